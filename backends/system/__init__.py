"""What the machine is doing, read from the kernel (/proc, sock_diag, cgroup2): no side effects."""
