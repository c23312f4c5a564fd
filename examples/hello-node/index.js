module.exports = async (req) => {
  const name = req.query.name || "world";
  return `Hello, ${name}, from Node!\n`;
};
