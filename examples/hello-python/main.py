def handle(req):
    # ?name=... on /function/hello-python, or the {name} of the /hello/{name} route.
    name = req.query.get("name") or req.headers.get("x-flick-param-name") or "world"
    return f"Hello, {name}, from Python!\n"
