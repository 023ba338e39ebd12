"""GET-ROLE rules: presentation contexts and SCP/SCU role selection for C-GET (catalog 5.8).

Checked once per association, on the A-ASSOCIATE-AC, with the RQ beside it
(PS3.4 C.5.3, PS3.7 D.3.3.4; catalog 3.2). The SOP class helpers here are
shared with the sub-operation rules.
"""

from __future__ import annotations

from pydicom import config as pydicom_config
from pydicom.uid import UID

from .engine import Event, Reporter, rule

#: SOP classes whose service is C-GET (catalog 3.4, both tables).
GET_SOP_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.2.1.3",  # Patient Root Q/R - GET
    "1.2.840.10008.5.1.4.1.2.2.3",  # Study Root Q/R - GET
    "1.2.840.10008.5.1.4.1.2.3.3",  # Patient/Study Only Q/R - GET (retired)
    "1.2.840.10008.5.1.4.1.2.4.3",  # Composite Instance Root Retrieve - GET
    "1.2.840.10008.5.1.4.1.2.5.3",  # Composite Instance Retrieve Without Bulk Data - GET
    "1.2.840.10008.5.1.4.38.4",  # Hanging Protocol IM - GET
    "1.2.840.10008.5.1.4.39.4",  # Color Palette IM - GET
    "1.2.840.10008.5.1.4.43.4",  # Generic Implant Template IM - GET
    "1.2.840.10008.5.1.4.44.4",  # Implant Assembly Template IM - GET
    "1.2.840.10008.5.1.4.45.4",  # Implant Template Group IM - GET
    "1.2.840.10008.5.1.4.20.3",  # Defined Procedure Protocol IM - GET
    "1.2.840.10008.5.1.4.1.1.200.6",  # Protocol Approval IM - GET
    "1.2.840.10008.5.1.4.1.1.201.4",  # Inventory - GET
})
WITHOUT_BULK_DATA_GET = "1.2.840.10008.5.1.4.1.2.5.3"
_DICOM_ROOT = "1.2.840.10008."
_STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1."


def is_get_class(uid: str | None) -> bool:
    return uid in GET_SOP_CLASSES


def is_storage_class(uid: str | None) -> bool:
    """Could a C-STORE sub-operation carry this abstract syntax?

    Standard UIDs are judged by their registered name; a private UID may be a
    private storage class, so it counts (a false "no storage PC" would be worse).
    """
    if not uid or uid in GET_SOP_CLASSES:
        return False
    if not uid.startswith(_DICOM_ROOT):
        return True
    if uid.startswith(_STORAGE_ROOT):
        return True
    name = UID(uid, validation_mode=pydicom_config.IGNORE).name
    return "Storage" in name and "Commitment" not in name


def _short(uid: str) -> str:
    name = UID(uid, validation_mode=pydicom_config.IGNORE).name
    return uid if name == uid else f"{name.removesuffix(' SOP Class')} ({uid})"


def _offered(event: Event) -> dict[int, str]:
    """Abstract syntax of every context the RQ proposed, by context ID."""
    request = event.view.request
    if request is None:
        return {}
    return {c.id: c.abstract_syntax for c in request.contexts if c.abstract_syntax}


@rule("GET-ROLE-001", "associate_ac")
def sub_operations_possible(report: Reporter, event: Event) -> None:
    view = event.view
    if view.request is None:
        return
    accepted = {ctx: uid for ctx, uid in _offered(event).items() if view.is_accepted(ctx)}
    gets = sorted({uid for uid in accepted.values() if is_get_class(uid)})
    if not gets:
        return
    storage = sorted({uid for uid in accepted.values() if is_storage_class(uid)})
    if any(view.may_act("requestor", "SCP", uid) for uid in storage):
        return
    if not storage:
        why = "no storage presentation context was accepted"
    elif not view.request.roles:
        why = (f"{len(storage)} storage context(s) were accepted but the RQ carried no role selection "
               "item (0x54), so the requestor may not act as Storage SCP")
    else:
        why = (f"none of the {len(storage)} accepted storage context(s) has SCP-role = 1 in both the RQ "
               "and the AC role selection items")
    # Whose doing: the requestor's if it never asked for the SCP role, the acceptor's if it refused it.
    asked = any((view.roles(uid)[0] or (0, 0))[1] for uid in storage)
    report(f"C-GET context(s) for {', '.join(_short(u) for u in gets)} accepted, but {why}; "
           "every C-GET sub-operation on this association will fail (PS3.4 C.4.3.2.1, C.5.3)",
           sender="acceptor" if asked else "requestor")


@rule("GET-ROLE-002", "associate_ac")
def role_items_name_offered_classes(report: Reporter, event: Event) -> None:
    request = event.view.request
    if request is None or not request.roles:
        return
    offered = set(_offered(event).values())
    strays = [r.sop_class_uid for r in request.roles if r.sop_class_uid not in offered]
    if strays:
        report(f"A-ASSOCIATE-RQ has role selection item(s) for {', '.join(_short(u) for u in strays)}, "
               "which no presentation context offers; PS3.7 D.3.3.4.1 requires the UID of an offered "
               "abstract syntax", sender="requestor", frame=event.view.record.first_frame)


@rule("GET-ROLE-003", "associate_ac")
def get_offered_with_storage(report: Reporter, event: Event) -> None:
    offered = set(_offered(event).values())
    gets = sorted(uid for uid in offered if is_get_class(uid))
    if gets and not any(is_storage_class(uid) for uid in offered):
        report(f"A-ASSOCIATE-RQ offers {', '.join(_short(u) for u in gets)} but not a single storage "
               "presentation context, so the C-GET SCP has no context for its C-STORE sub-operations "
               "(PS3.4 C.4.3.2.1)", sender="requestor", frame=event.view.record.first_frame)


@rule("GET-ROLE-004", "associate_ac")
def both_roles_rejected(report: Reporter, event: Event) -> None:
    view = event.view
    if view.request is None:
        return
    proposed = {r.sop_class_uid: (r.scu_role, r.scp_role) for r in view.request.roles}
    rejected = [r.sop_class_uid for r in event.params.roles
                if (r.scu_role, r.scp_role) == (0, 0) and proposed.get(r.sop_class_uid) == (1, 1)]
    if rejected:
        report(f"A-ASSOCIATE-AC answers the (SCU 1, SCP 1) role proposal for "
               f"{', '.join(_short(u) for u in rejected)} with (0, 0), whose effect PS3.7 D.3.3.4 leaves "
               "undefined (pynetdicom then treats the context as unusable)")


@rule("TA-ROLE-001", "associate_rq")
def storage_scp_role_proposed(report: Reporter, event: Event) -> None:
    # Judged on the RQ alone, so it is reported even when the request is never answered
    # (go-netdicom, Horos: C-GET models and storage classes, no role selection item at all).
    params = event.params
    offered = {c.abstract_syntax for c in params.contexts if c.abstract_syntax}
    gets = sorted(uid for uid in offered if is_get_class(uid))
    storage = sorted(uid for uid in offered if is_storage_class(uid))
    if not gets or not storage:
        return  # no C-GET, or no storage at all (GET-ROLE-003)
    asked = {r.sop_class_uid for r in params.roles if r.scp_role}
    if asked & set(storage):
        return
    how = "no SCP/SCU role selection item (0x54) at all" if not params.roles else \
        "role selection items, none with SCP-role = 1 for a storage class"
    report(f"A-ASSOCIATE-RQ offers {', '.join(_short(u) for u in gets)} and {len(storage)} storage "
           f"context(s) with {how}: without the SCP role for a storage class the requestor cannot "
           "receive any C-STORE sub-operation of its C-GETs (PS3.4 C.4.3.2.1, PS3.7 D.3.3.4)",
           sender="requestor", frame=event.view.record.first_frame)
