"""Tests on a real single-node cluster (scripts/cluster): real pods, real Services."""
