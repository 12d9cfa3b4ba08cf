"""What the composition root leaves on the app for the routes: the services. Imports: services."""

from __future__ import annotations

from starlette.requests import Request

from semreg.services.container import Services


def services_of(request: Request) -> Services:
    """The services of the app serving ``request`` (built by ``create_app``'s lifespan)."""
    services: Services = request.app.state.services
    return services
