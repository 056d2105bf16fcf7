"""Launching commands already jailed: kernel primitives, no policy.

- `spawn`: fork + exec into a netns, as a user, under a group, under seccomp (`run_jailed`,
  `spawn_jailed`).
- `netns`: named network namespaces `netjail-<jail>`, optionally with a veth link and NAT.
- `groups`: `netjail-<jail>` system groups for gid-owner rules.
- `seccomp_filter`: the socket filter (AF_UNIX and AF_NETLINK only).
- `credentials`, `addr_pool`: the pure parts (who runs it, which addresses).
"""
