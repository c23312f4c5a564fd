# Prints every CloudEvent it receives (Knative's event-display, as a Flick function).
def handle(req):
    attrs = {k[3:]: v for k, v in req.headers.items() if k.startswith("ce-")}
    print("event", attrs.get("id"), attrs.get("type"), "from", attrs.get("source"), "data:", req.body.decode(errors="replace"))
    return (202, {}, b"")
