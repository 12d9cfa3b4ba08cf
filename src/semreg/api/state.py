"""What the composition root leaves on the app for the routes: the services and the page limit.

Imports: services.
"""

from __future__ import annotations

from starlette.requests import Request

from semreg.services.container import Services


def services_of(request: Request) -> Services:
    """The services of the app serving ``request`` (built by ``create_app``'s lifespan)."""
    services: Services = request.app.state.services
    return services


def max_page_size(request: Request) -> int:
    """``server.max_page_size``: the most entries one page of a /v2 listing holds."""
    return int(request.app.state.max_page_size)
