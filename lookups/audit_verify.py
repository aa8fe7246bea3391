"""Standalone verifier for an audit verification bundle (issue 13). No Django, no database.

Usage::

    python -m lookups.audit_verify kinguard-audit-2026-05-10-2026-05-11.jsonl

A bundle is JSON Lines: one ``header`` line, then one line per chain position from
``first_sequence`` to ``last_sequence`` with no gap. A position is either an ``event``
(every field the hash covers, plus ``prev_hash`` and ``hash``) or, for an event of a clinic
outside the exporter's scope, a ``link`` (sequence, prev_hash, hash only: it proves the
position exists without revealing its content). The chain is one global chain, so a
clinic-scoped export stays verifiable through its links.

What is proven (exit 0): every event's content hashes to its ``hash``; each position's
``prev_hash`` is the previous position's ``hash``; sequences run without a gap; the first
``prev_hash`` and the last ``hash`` equal the header's anchors. Any altered cell, dropped,
inserted or reordered row fails (exit 1) naming the first bad line. Without a signed head
the header itself is only as trustworthy as its source: compare ``anchor_last_hash`` with
the head the operator published.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable
from typing import Any

FORMAT = "kinguard-audit-bundle/1"
HEAD_FORMAT = "kinguard-audit-head/1"
HEAD_FIELDS = ("format", "sequence", "hash", "signed_at", "key_id")
GENESIS_HASH = "0" * 64
# The fields the hash covers, in the bundle's names (see lookups.audit.canonical_bytes).
HASHED_FIELDS = (
    "sequence",
    "created_at",
    "actor",
    "actor_label",
    "clinic",
    "action",
    "outcome",
    "subject",
    "target_type",
    "target_id",
    "ip",
    "user_agent",
    "details",
)


def canonical_content(content: dict[str, Any]) -> bytes:
    """The fixed textual form of an event's hashed fields (shared with lookups.audit)."""
    return json.dumps(
        {field: content[field] for field in HASHED_FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def chain_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical_content(content)).hexdigest()


def head_message(head: dict[str, Any]) -> bytes:
    """The bytes an Ed25519 head signature covers."""
    return json.dumps({f: head[f] for f in HEAD_FIELDS}, sort_keys=True, separators=(",", ":")).encode()


class BundleError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


def verify_signed_head(header: dict[str, Any], hashes: dict[int, str], public_key_b64: str) -> str:
    """Check the bundle's signed head with the public key; a line saying what it proves."""
    import base64

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    head = header.get("signed_head")
    if not head:
        raise BundleError(1, "the bundle carries no signed head")
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
        key.verify(base64.b64decode(head["signature"]), head_message(head))
    except (InvalidSignature, ValueError, KeyError) as exc:
        raise BundleError(1, "the signed head's signature does not verify with this public key") from exc
    sequence = int(head["sequence"])
    if sequence in hashes:
        if hashes[sequence] != head["hash"]:
            raise BundleError(0, f"event {sequence} differs from the signed head: rewritten and re-chained")
        return f"signed head #{sequence} ({head['signed_at']}) is inside the slice and matches"
    if sequence > int(header["last_sequence"]):
        return f"signed head #{sequence} ({head['signed_at']}) is later than the slice: its signature is valid"
    return f"signed head #{sequence} ({head['signed_at']}) is earlier than the slice: its signature is valid"


def verify_lines(lines: Iterable[str], hashes: dict[int, str] | None = None) -> dict[str, Any]:
    """Check a bundle; return its header on success, raise BundleError naming the first bad line.
    ``hashes``, when given, receives each position's hash by sequence."""
    iterator = iter(enumerate(lines, start=1))
    try:
        _, first_line = next(iterator)
        header = json.loads(first_line)
    except (StopIteration, ValueError) as exc:
        raise BundleError(1, "no header line") from exc
    if header.get("type") != "header" or header.get("format") != FORMAT:
        raise BundleError(1, f"not a {FORMAT} header")
    expected_sequence = int(header["first_sequence"])
    expected_prev = header["anchor_prev_hash"]
    last_hash = None
    for number, text in iterator:
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except ValueError as exc:
            raise BundleError(number, "not JSON") from exc
        sequence = row.get("sequence")
        if sequence != expected_sequence:
            raise BundleError(
                number, f"expected sequence {expected_sequence}, found {sequence}: rows dropped or reordered"
            )
        if row.get("prev_hash") != expected_prev:
            raise BundleError(number, f"event {sequence}: prev_hash does not match the previous row")
        if row.get("type") == "event":
            try:
                computed = chain_hash(row["prev_hash"], row)
            except KeyError as exc:
                raise BundleError(number, f"event {sequence}: field {exc} missing") from exc
            if computed != row.get("hash"):
                raise BundleError(number, f"event {sequence}: content does not match its hash (altered)")
        elif row.get("type") != "link":
            raise BundleError(number, f"unknown row type {row.get('type')!r}")
        expected_prev = last_hash = row["hash"]
        if hashes is not None:
            hashes[sequence] = last_hash
        expected_sequence += 1
    if expected_sequence - 1 != int(header["last_sequence"]):
        raise BundleError(0, f"bundle ends at {expected_sequence - 1}, header says {header['last_sequence']}")
    if header["last_sequence"] >= header["first_sequence"] and last_hash != header["anchor_last_hash"]:
        raise BundleError(0, "the last hash does not match the header's end anchor")
    return header


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lookups.audit_verify", description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="the .jsonl verification bundle")
    parser.add_argument("--public-key", help="the audit signing public key (base64, from manage.py audit_public_key)")
    args = parser.parse_args(argv)
    hashes: dict[int, str] = {}
    try:
        with open(args.bundle, encoding="utf-8") as handle:
            header = verify_lines(handle, hashes)
        signed = (
            verify_signed_head(header, hashes, args.public_key)
            if args.public_key
            else "no --public-key: head not checked"
        )
    except BundleError as exc:
        print(f"NOT VERIFIED: {exc}")
        return 1
    except (OSError, KeyError, TypeError, ValueError) as exc:
        print(f"NOT VERIFIED: unreadable bundle ({exc})")
        return 1
    print(
        f"VERIFIED: events {header['first_sequence']}..{header['last_sequence']} are an unaltered, gap-free "
        f"slice of the chain ending in {header['anchor_last_hash']}; {signed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
