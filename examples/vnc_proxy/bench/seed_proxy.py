"""Runs the seed, LabOrchestrator's WebsocketProxyLib (PyPI lab-orchestrator-ws-proxy-lib 1.0.0),
in its local development mode in front of a KubeVirt stand-in, for vnc_proxy's bench.

Usage: python seed_proxy.py PORT UPSTREAM_PORT SECRET
"""
import logging
import sys

from lab_orchestrator_ws_proxy_lib.ws_proxy_lib import WebsocketProxy

logging.basicConfig(level=logging.WARNING)
port, upstream, secret = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
proxy = WebsocketProxy(
    remote_url=f"ws://127.0.0.1:{upstream}",
    api_path="/apis/subresources.kubevirt.io/v1alpha3/namespaces/{namespace}/virtualmachineinstances/{vmi_name}/vnc",
    local_dev_mode=True,
    secret_key=secret,
)
proxy.run("127.0.0.1", port)
