"""Each round's figures sent to a monitoring service outside vpcprobe (CloudMonitor custom metrics)."""
