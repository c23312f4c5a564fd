// A long-running service: it keeps state in memory between requests, listens on $PORT.
const http = require("http");

let count = 0;
const started = new Date().toISOString();

http
  .createServer((req, res) => {
    count++;
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({ service: process.env.K_SERVICE, count, started }) + "\n");
  })
  .listen(Number(process.env.PORT), "127.0.0.1", () => {
    console.log(`counter listening on ${process.env.PORT}`);
  });
