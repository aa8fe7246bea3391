"""The MLLP listener over real sockets: round trip with ACKs, redelivery on one connection,
unknown addresses closed unread, oversized and unframed blocks answered AR, mutual TLS."""

import asyncio
import concurrent.futures
import datetime as dt
import hashlib
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hl7.mllp import open_hl7_connection

from lookups.fhir.models import LabReport
from lookups.hl7 import peers as peer_config
from lookups.hl7.parsing import MAX_MESSAGE_BYTES
from lookups.hl7.server import Listener, tls_context
from lookups.models import TestResult

from .messages import ack_code, oru, segments

pytestmark = pytest.mark.timeout(60)


async def _exchange(listener, blocks, *, ssl_context=None, raw=False):
    reader, writer = await open_hl7_connection("127.0.0.1", listener.port(), ssl=ssl_context)
    answers = []
    try:
        for block in blocks:
            try:
                writer.write(block) if raw else writer.writeblock(block)
                await writer.drain()
                answers.append(await asyncio.wait_for(reader.readblock(), 20))
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                answers.append(None)  # the listener closed the connection
                break
    finally:
        writer.close()
    return answers


def run(peers, blocks, *, tls=None, client=None, raw=False):
    async def main():
        listener = Listener(peers)
        await listener.start("127.0.0.1", 0, tls)
        try:
            return await _exchange(listener, blocks, ssl_context=client, raw=raw)
        finally:
            await listener.close()

    # A thread of its own: Playwright's sync API (tests/browser, earlier in the same session)
    # leaves an event loop running in the main thread, where asyncio.run() refuses to start.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def test_round_trip_and_redelivery_on_one_connection(transactional_db, peers, elder):
    first, again = run(peers, [oru(), oru(control="MSG0002")])
    assert ack_code(first) == "AA" and segments(first)["MSA"][0][2] == "MSG0001"
    assert ack_code(again) == "AA" and segments(again)["MSA"][0][2] == "MSG0002"
    assert TestResult.objects.filter(elder=elder).count() == 1
    assert LabReport.objects.count() == 1


def test_content_error_keeps_the_connection(transactional_db, peers, elder):
    bad, good = run(peers, [oru(filler=""), oru(control="MSG0002")])
    assert ack_code(bad) == "AE" and ack_code(good) == "AA"


def test_unknown_address_is_closed_unread(transactional_db, lab, elder):
    peers = peer_config.load([{"facility": "CITYLAB", "sender": lab.name, "addresses": ["10.20.0.0/28"]}])
    assert run(peers, [oru()]) == [None]
    assert not LabReport.objects.exists()


def test_oversized_and_unframed_blocks(transactional_db, peers, elder):
    (big,) = run(peers, [b"MSH|" + b"x" * (MAX_MESSAGE_BYTES + 100)])
    assert ack_code(big) == "AR" and "larger" in segments(big)["MSA"][0][3]
    (unframed,) = run(peers, [oru() + b"\x1c\r"], raw=True)
    assert ack_code(unframed) == "AR"
    assert not LabReport.objects.exists()


# --- mutual TLS --------------------------------------------------------------------------------


def _cert(name, issuer_key=None, issuer=None, ca=False):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def _write(tmp_path, name, key, cert):
    (tmp_path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(tmp_path / f"{name}.pem"), str(tmp_path / f"{name}.key")


@pytest.fixture
def pki(tmp_path):
    ca_key, ca = _cert("Test CA", ca=True)
    ca_pem, _ = _write(tmp_path, "ca", ca_key, ca)
    out = {"ca": ca_pem}
    for name in ("server", "lab", "intruder"):
        key, cert = _cert(name, ca_key, ca.subject)
        out[name] = _write(tmp_path, name, key, cert)
        out[f"{name}_sha256"] = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return out


def _client(pki, name=None):
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=pki["ca"])
    context.check_hostname = False
    if name:
        context.load_cert_chain(*pki[name])
    return context


def test_mutual_tls_maps_the_client_certificate_to_the_sender(transactional_db, lab, elder, pki):
    peers = peer_config.load([{"facility": "CITYLAB", "sender": lab.name, "cert_sha256": pki["lab_sha256"]}])
    tls = tls_context(*pki["server"], pki["ca"])
    (answer,) = run(peers, [oru()], tls=tls, client=_client(pki, "lab"))
    assert ack_code(answer) == "AA"
    # another certificate from the same CA is not this lab: closed before reading
    assert run(peers, [oru(control="M2")], tls=tls, client=_client(pki, "intruder")) == [None]
    assert TestResult.objects.filter(elder=elder).count() == 1


def test_tls_without_client_certificate_fails_the_handshake(transactional_db, lab, pki):
    peers = peer_config.load([{"facility": "CITYLAB", "sender": lab.name, "cert_sha256": pki["lab_sha256"]}])
    tls = tls_context(*pki["server"], pki["ca"])
    try:
        answers = run(peers, [oru()], tls=tls, client=_client(pki))
    except (ssl.SSLError, ConnectionError):  # refused in the handshake (TLS 1.2) ...
        answers = [None]
    assert answers == [None]  # ... or on the first read (TLS 1.3)
    assert not LabReport.objects.exists()
