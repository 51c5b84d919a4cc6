"""A real single-node Kubernetes cluster on this machine, for the tests and for people.

`python -m scripts.cluster up | install | down | status` (`make cluster`, `make cluster-install`,
`make cluster-down`). Everything it makes is named by it and recorded in its state directory, so
`down` removes exactly that: its processes (by pid), its bridge, its iptables chains, its cgroup
subtree, its mounts, and the kernel settings it changed (restored to what they were).
"""
