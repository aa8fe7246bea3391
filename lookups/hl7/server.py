"""The asyncio MLLP listener (python-hl7's ``hl7.mllp`` streams) behind ``manage.py hl7_listen``.

Invariants: a connection from an address (or certificate) no peer is configured for is closed
before a byte is read; one message at a time per connection, each answered with an ACK; the
work (database) runs in a worker thread, never on the event loop; a block larger than
``MAX_MESSAGE_BYTES``, a broken frame, or a connection idle or slow beyond ``idle_timeout`` gets an
AR (when a frame can still be answered) and is closed; at most ``max_connections`` at once.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from hl7.mllp import InvalidBlockError, start_hl7_server

from . import ack, service
from . import peers as peer_config
from .parsing import MAX_MESSAGE_BYTES, Header, Problem

logger = logging.getLogger(__name__)


@dataclass
class Limits:
    max_connections: int = 20
    idle_timeout: float = 300.0  # seconds to wait for the next complete message before closing
    workers: int = 4


def _peer(writer) -> tuple[str, str]:
    address = writer.get_extra_info("peername") or ("", 0)
    ssl_object = writer.get_extra_info("ssl_object")
    cert = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return str(address[0]), hashlib.sha256(cert).hexdigest() if cert else ""


class Listener:
    def __init__(self, peers: list[peer_config.Peer], limits: Limits | None = None):
        self.peers = peers
        self.limits = limits or Limits()
        self.open = 0
        self.executor = ThreadPoolExecutor(max_workers=self.limits.workers, thread_name_prefix="hl7")
        self.server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None):
        self.server = await start_hl7_server(self._client, host, port, limit=MAX_MESSAGE_BYTES + 16, ssl=tls)
        return self.server

    def port(self) -> int:
        if self.server is None:
            raise RuntimeError("start() first")
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        self.executor.shutdown(wait=True)

    async def _client(self, reader, writer) -> None:
        ip, cert = _peer(writer)
        if self.open >= self.limits.max_connections or not peer_config.known_address(self.peers, ip, cert):
            logger.warning("hl7: connection from %s closed (unknown peer or too many connections)", ip)
            writer.close()
            return
        self.open += 1
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(reader.readblock(), self.limits.idle_timeout)
                except (TimeoutError, asyncio.IncompleteReadError):
                    return
                except ValueError:  # larger than the limit: answer, then close (the stream is lost)
                    writer.writeblock(
                        ack.build(
                            Header(), "AR", [Problem(100, f"The message is larger than {MAX_MESSAGE_BYTES} bytes.")]
                        )
                    )
                    await writer.drain()
                    return
                except InvalidBlockError:
                    writer.writeblock(
                        ack.build(Header(), "AR", [Problem(100, "An MLLP block must begin with <VT> (0x0B).")])
                    )
                    await writer.drain()
                    return
                work = functools.partial(service.handle_in_worker, raw, peers=self.peers, ip=ip, cert_sha256=cert)
                answer = await loop.run_in_executor(self.executor, work)
                writer.writeblock(answer)
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            self.open -= 1
            writer.close()


def tls_context(cert: str, key: str, client_ca: str) -> ssl.SSLContext:
    """Mutual TLS: the server's certificate, and client certificates required, from ``client_ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(cert, key)
    return context
