"""Process-wide switches, in the manner of ``pynetdicom._config``."""

#: When True, setting a non-conformant UID on a primitive raises ValueError;
#: when False it is accepted (values over 64 characters always raise).
ENFORCE_UID_CONFORMANCE: bool = False
