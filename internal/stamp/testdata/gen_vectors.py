#!/usr/bin/env python3
"""Independent reference implementation of the stamp format (README, "Wire
format"), used to generate vectors.json. The Go tests check the Go code
against these vectors, so the two implementations must agree byte for byte.

Run: python3 gen_vectors.py > vectors.json
"""
import hashlib
import json
import struct

TAG = b"electrum-hashcash"


def insert_stamp(line: bytes, text: str) -> bytes:
    """Insert "pow":"<text>" before the final closing brace of an object line."""
    close = line.rindex(b"}")
    inner = line[line.index(b"{") + 1:close].strip()
    member = b'"pow":"' + text.encode() + b'"'
    if inner:
        member = b"," + member
    return line[:close] + member + line[close:]


def hashed_input(work, time, salt, body, resource, counter):
    prefix = TAG + bytes([1]) + struct.pack(">QQ", work, time & 0xFFFFFFFFFFFFFFFF)
    prefix += salt + hashlib.sha256(body).digest()
    prefix += bytes([len(resource)]) + resource.encode()
    prefix += b"\0" * (-len(prefix) % 64)
    return prefix + struct.pack(">Q", counter)


def meets(digest, work):
    return int.from_bytes(digest[:8], "big") * work < 2**64


def vector(name, line, resource, time, salt, work, want_valid):
    counter = 0
    while True:
        d = hashlib.sha256(hashed_input(work, time, salt, line, resource, counter)).digest()
        if meets(d, work) == want_valid:
            break
        counter += 1
    text = "1:%d:%d:%s:%d:%s" % (work, time, salt.hex(), counter, resource)
    wire = insert_stamp(line, text)
    return {
        "name": name,
        "body": line.decode(),
        "wire": wire.decode(),
        "stamp": text,
        "resource": resource,
        "time": time,
        "salt": salt.hex(),
        "work": work,
        "counter": counter,
        "body_sha256": hashlib.sha256(line).hexdigest(),
        "input_hex": hashed_input(work, time, salt, line, resource, counter).hex(),
        "digest": d.hex(),
        "valid": meets(d, work),
    }


def main():
    salt = bytes(range(16))
    t = 1763937600
    vs = [
        vector("version request", b'{"jsonrpc":"2.0","method":"server.version","id":0,"params":["electrum/4.3.4","1.4"]}',
               "electrum.example.org:50002", t, salt, 256, True),
        vector("no params", b'{"jsonrpc":"2.0","method":"server.banner","id":7}',
               "electrum.example.org:50002", t, salt, 4096, True),
        vector("empty object", b'{}', "127.0.0.1:50001", t, salt, 16, True),
        vector("whitespace and unicode", b'{ "method" : "x", "params" : ["caf\xc3\xa9 \\u00e9", "pow"] , "id":1 }',
               "[::1]:50002", t, bytes(16), 1000, True),
        vector("long resource", b'{"method":"blockchain.scripthash.subscribe","id":3,"params":["15ce6896d0a5e8f6d4f8b5a8b3f2b3c9c3d5a0b7c1e2f3a4b5c6d7e8f9a041c4"]}',
               "a" * 200 + ".example:1", t, salt, 2**12, True),
        vector("counter that fails", b'{"jsonrpc":"2.0","method":"server.ping","id":9}',
               "electrum.example.org:50002", t, salt, 2**20, False),
        vector("work one always passes", b'{"id":1,"method":"server.ping"}', "h:1", 0, salt, 1, True),
    ]
    print(json.dumps(vs, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
