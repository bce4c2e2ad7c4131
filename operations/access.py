"""Who may see and act on which operation (spec/api.md section 9; docs/security.md).

An operation belongs to the user who submitted it. For anyone else it does not exist: every read
and every action goes through `Operation.objects.visible_in(scope)`, so another owner's operation
is a 404 exactly like an unknown id. Staff with the `operations.view_operation` permission see
every owner's operations (read only: get, by-correlation, list); executing or cancelling stays
with the owner (staff cancel through the support console, with the cancel_operation permission).

When DPM_API_AUTH_REQUIRED=false an anonymous caller owns the operations it submits as "nobody"
(owner NULL): anonymous callers share those, and see nobody else's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VIEW_PERMISSION = "operations.view_operation"


@dataclass(frozen=True)
class OperationScope:
    """The operations a caller sees (`sees_all`, or only `owner_id`'s) and may act on."""

    # The caller's user id: whose operations are its own. None: the anonymous local mode's.
    owner_id: int | None
    # Every owner's operations are visible (staff with the view permission, internal callers).
    sees_all: bool = False
    # Every owner's operations may be executed and cancelled (internal callers only).
    acts_on_all: bool = False

    def owns(self, owner_id: int | None) -> bool:
        return self.acts_on_all or owner_id == self.owner_id


# The service's own callers that act for the operator, not for a user: the admin's actions (behind
# their own permissions), management commands and the worker.
OPERATIONS_ALL = OperationScope(owner_id=None, sees_all=True, acts_on_all=True)


def operation_scope_for_user(user: Any) -> OperationScope:
    """The scope of an API caller: `request.user`, None when the caller is anonymous."""
    if user is None or not user.is_authenticated:
        return OperationScope(owner_id=None)
    # is_staff first: a plain user never costs the permission query.
    sees_all = bool(user.is_active and user.is_staff and user.has_perm(VIEW_PERMISSION))
    return OperationScope(owner_id=user.pk, sees_all=sees_all)
