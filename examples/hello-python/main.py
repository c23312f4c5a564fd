def handle(req):
    name = req.query.get("name", "world")
    return f"Hello, {name}, from Python!\n"
