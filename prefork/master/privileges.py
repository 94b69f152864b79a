"""Dropping root privileges in a worker, after the master bound the sockets.

As nginx and gunicorn: the master stays as started (it may bind new sockets on TTIN or HUP,
rename the pidfile, re-execute itself), and every worker switches to `user`/`group` before it
loads the application, so no request is ever served with root's rights.
"""

from __future__ import annotations

import grp
import os
import pwd


class PrivilegeError(Exception):
    pass


def resolve(user: str | None, group: str | None) -> tuple[int | None, int | None, str | None]:
    """(uid, gid, user name) for the configured names or numbers; raises PrivilegeError."""
    uid = gid = name = None
    if user:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except (KeyError, ValueError):
            raise PrivilegeError(f"unknown user {user!r} (key 'user')") from None
        uid, gid, name = entry.pw_uid, entry.pw_gid, entry.pw_name
    if group:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except (KeyError, ValueError):
            raise PrivilegeError(f"unknown group {group!r} (key 'group')") from None
    return uid, gid, name


def drop(user: str | None, group: str | None) -> None:
    """Switch this process to user/group (nothing to do when already them)."""
    uid, gid, name = resolve(user, group)
    try:
        if gid is not None and gid != os.getgid():
            if name:
                os.initgroups(name, gid)
            else:
                os.setgroups([gid])
            os.setgid(gid)
        if uid is not None and uid != os.getuid():
            os.setuid(uid)
    except PermissionError:
        raise PrivilegeError(f"cannot switch to user {user!r} / group {group!r}: "
                             "the server must be started as root to change user") from None
