"""The operators' console: a Starlette app on uvicorn, on its own listener inside
`sotto receive` (docs/operator-guide.md).

    app.py           the app factory (routers, page, libraries, security headers)
    dependencies.py  the session, the acting person and their right, CSRF, errors as HTTP
    routers/         one module per resource: session, alerts, events, devices, operators, audit, stats
    events.py        the live feed (database polling) behind /api/events
    notify.py        webhook and e-mail notifications
    server.py        uvicorn in a thread: start_console()
    static/          the page (plain JS, no build step); Leaflet comes from node_modules
"""

from host_tools.receiver.console.config import ConsoleConfig, NotifyConfig

__all__ = ["ConsoleConfig", "NotifyConfig"]
