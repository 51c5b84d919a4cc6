"""Tests against a real local control plane (etcd + kube-apiserver), kubectl and helm."""
