"""The unsubscribe page every outreach email links to."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from campaigns.delivery import customer_for_unsubscribe_token, customer_unsubscribe


@csrf_exempt
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """The link in every email. GET asks for confirmation (link scanners must not unsubscribe);
    POST unsubscribes, also as RFC 8058 one-click from the mail client (hence no CSRF token)."""
    customer = customer_for_unsubscribe_token(token)
    if customer is None:
        raise Http404("Unknown or damaged unsubscribe link")
    done = customer.email_unsubscribed_at is not None
    if request.method == "POST":
        customer_unsubscribe(customer=customer)
        done = True
    elif request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405)
    return render(request, "campaigns/unsubscribe.html", {"tenant_name": customer.tenant.name, "done": done})
