"""No API tokens in the admin (docs/security.md).

DRF registers an admin for its tokens that shows every key in clear (a token's name is its key, so
it also lands in page titles, breadcrumbs and messages): a key on a screen is a key leaked. Keys are
issued, rotated and revoked with `manage.py issue_token`, the only place a key is ever shown. In the
admin, unticking a user's "active" box cuts off their token at once (TokenAuthentication refuses
inactive users), and deleting the user deletes the token.
"""

from __future__ import annotations

from django.contrib import admin
from rest_framework.authtoken.models import TokenProxy

if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)
