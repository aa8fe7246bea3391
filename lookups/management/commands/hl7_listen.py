"""manage.py hl7_listen [--host H] [--port 2575] [--peers FILE] [--tls-cert C --tls-key K --tls-client-ca CA].

The HL7 v2 door for laboratories: an asyncio MLLP server taking ORU^R01 and answering ACK/NAK,
delivering through the same service as ``/fhir/`` (lookups.hl7). Runs until interrupted.
"""

import asyncio

from django.core.management.base import BaseCommand, CommandError

from lookups.hl7 import peers as peer_config
from lookups.hl7.server import Limits, Listener, tls_context


class Command(BaseCommand):
    help = "Listen for HL7 v2 ORU^R01 results over MLLP (ACK/NAK); senders mapped by facility + address/certificate."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=2575)
        parser.add_argument("--peers", help="JSON peer list (default: settings.KINGUARD_HL7_PEERS)")
        parser.add_argument("--tls-cert", help="server certificate (PEM); with --tls-key and --tls-client-ca")
        parser.add_argument("--tls-key")
        parser.add_argument("--tls-client-ca", help="CA that signs the laboratories' client certificates")
        parser.add_argument("--max-connections", type=int, default=20)
        parser.add_argument("--idle-timeout", type=float, default=300.0)

    def handle(self, *args, **options):
        try:
            peers = peer_config.load_file(options["peers"]) if options["peers"] else peer_config.configured()
        except peer_config.PeerConfigError as exc:
            raise CommandError(str(exc)) from None
        if not peers:
            raise CommandError("No HL7 peers configured (--peers FILE or KINGUARD_HL7_PEERS).")
        tls_parts = [options["tls_cert"], options["tls_key"], options["tls_client_ca"]]
        if any(tls_parts) and not all(tls_parts):
            raise CommandError("TLS needs --tls-cert, --tls-key and --tls-client-ca together.")
        tls = tls_context(*tls_parts) if all(tls_parts) else None
        limits = Limits(max_connections=options["max_connections"], idle_timeout=options["idle_timeout"])
        asyncio.run(self._serve(Listener(peers, limits), options["host"], options["port"], tls))

    async def _serve(self, listener: Listener, host: str, port: int, tls) -> None:
        server = await listener.start(host, port, tls)
        mode = "mutual TLS" if tls else "plain TCP (put it behind a TLS-terminating proxy or a private link)"
        self.stdout.write(f"HL7 MLLP listening on {host}:{listener.port()} ({mode}); {len(listener.peers)} peer(s).")
        try:
            async with server:
                await server.serve_forever()
        finally:
            await listener.close()
