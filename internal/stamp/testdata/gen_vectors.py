#!/usr/bin/env python3
"""Test vectors for the electrum-hashcash wire format, version 1
(docs/wire-format.md), from an implementation independent of the Go code.

Each vector is one request line and what a verifier with the vector's policy
must do with it. The stamps are minted here (hashed input, verdict); where the
stamp member goes and what its removal leaves are written out by hand in each
vector's template, and so is the expected verdict: the vectors state the
specification by example. The Go tests check every vector against the Go
code (internal/stamp: scanning, removal, hashed input, digest; internal/verify:
verdict, forwarded bytes, error replies), so a vector the code disagrees with
fails a test.

Run: python3 gen_vectors.py > vectors.json
"""
import hashlib
import json
import struct

TAG = b"electrum-hashcash"
U64 = 2**64

# Template notation: the text between OPEN and CLOSE is what a verifier
# removes with the stamp member; each HOLE is replaced by a stamp's text.
OPEN, CLOSE, HOLE = "\u27e8", "\u27e9", "@"

T = 1763937600  # the verifier's clock in most vectors, Unix seconds
SALT = bytes(range(16))
RES = "electrum.example.org:50002"


def hashed_input(work, time, salt, body, resource, counter):
    prefix = TAG + bytes([1]) + struct.pack(">QQ", work, time % U64)
    prefix += salt + hashlib.sha256(body).digest()
    prefix += bytes([len(resource)]) + resource.encode()
    prefix += b"\0" * (-len(prefix) % 64)
    return prefix + struct.pack(">Q", counter)


def proves(digest, work):
    return int.from_bytes(digest[:8], "big") * work < U64


class S:
    """A stamp: minted for its element's body, or raw text."""

    def __init__(self, work=16, time=T, salt=SALT, resource=None, proves=True,
                 counter=None, raw=None, escape=False):
        self.work, self.time, self.salt, self.resource = work, time, salt, resource
        self.want, self.counter, self.raw, self.escape = proves, counter, raw, escape

    def make(self, body, policy, element):
        if self.raw is not None:
            return self.raw, {"element": element, "text": self.raw, "parses": False}
        resource = self.resource if self.resource is not None else policy["resource"]
        counter = self.counter if self.counter is not None else 0
        while True:
            inp = hashed_input(self.work, self.time, self.salt, body, resource, counter)
            d = hashlib.sha256(inp).digest()
            if self.counter is not None or proves(d, self.work) == self.want:
                break
            counter += 1
        text = "1:%d:%d:%s:%d:%s" % (self.work, self.time, self.salt.hex(), counter, resource)
        wire = text.replace(":", "\\u003a") if self.escape else text
        return wire, {
            "element": element,
            "text": text,
            "parses": True,
            "escaped": self.escape,
            "work": self.work,
            "time": self.time,
            "salt": self.salt.hex(),
            "counter": counter,
            "resource": resource,
            "body": body.decode(),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "input_hex": inp.hex(),
            "digest": d.hex(),
            "proves": proves(d, self.work),
        }


class E:
    """A request object (a line's object or a batch element).

    method: its method as decoded (None: none, or not a string);
    id: its id as the raw JSON text a refusal must echo ("null": none)."""

    def __init__(self, template, stamps=(), method=None, id="null"):
        self.template, self.stamps, self.method, self.id = template, list(stamps), method, id

    def stripped(self):
        out, depth = [], 0
        for c in self.template:
            if c == OPEN:
                depth += 1
            elif c == CLOSE:
                depth -= 1
            elif depth == 0:
                out.append(c)
        return "".join(out)

    def wire(self, texts):
        out, texts = [], list(texts)
        for c in self.template:
            if c == HOLE:
                out.append(texts.pop(0))
            elif c not in (OPEN, CLOSE):
                out.append(c)
        return "".join(out)


def policy(resource=RES, price=16, now=T, window=300, skew=30, method_prices=None, max_batch=1000):
    return {"resource": resource, "price": price, "method_prices": method_prices or {},
            "now": now, "window": window, "skew": skew, "max_batch": max_batch}


def price_of(pol, method):
    return pol["method_prices"].get(method, pol["price"])


def echo(s):
    """What an error's data repeats of a method name: at most 256 bytes, cut
    at a UTF-8 character boundary and followed by U+2026."""
    b = s.encode("utf-8", "surrogatepass")
    if len(b) <= 256:
        return s
    cut = 256
    while cut > 0 and (b[cut] & 0xC0) == 0x80:
        cut -= 1
    return b[:cut].decode() + "\u2026"


LINE_REASONS = ("parse", "too_large", "invalid_request")


def reply(pol, e, reason):
    r = {"id": e.id if e else "null", "reason": reason, "method": None, "price": 0}
    if e is not None and reason not in LINE_REASONS:
        r["price"] = price_of(pol, e.method)
        r["method"] = echo(e.method) if e.method else None
    return r


def vector(name, elements, pol=None, verdict=("accepted",), batch=None, again=None, line=None,
           prefix="", suffix="", minted=False, raw_line=None, strips=True):
    """elements: the line's request objects; batch: None for a line holding
    one object, else the (open, separator, close) text around them.
    verdict: what the verifier decides, one reason per element ("accepted"
    when the line is forwarded; "batch" for an element refused only because
    another was), or one line-level reason for the whole line (line=True or
    raw_line). again: the verdict on the same line sent again at once."""
    pol = pol or policy()
    stamps, texts = [], []
    for i, e in enumerate(elements):
        body = e.stripped().encode()
        ts = []
        for s in e.stamps:
            t, info = s.make(body, pol, i)
            ts.append(t)
            stamps.append(info)
        texts.append(ts)
    wires = [e.wire(t) for e, t in zip(elements, texts)]
    parts = [e.stripped() for e in elements]
    if raw_line is not None:
        wire = stripped = raw_line
        line = True
    elif batch is None:
        wire, stripped = wires[0], parts[0]
    else:
        wire = batch[0] + batch[1].join(wires) + batch[2]
        stripped = batch[0] + batch[1].join(parts) + batch[2]
    wire, stripped = prefix + wire + suffix, prefix + stripped + suffix
    verdict = list(verdict)
    accepted = verdict == ["accepted"] * len(verdict)
    if accepted:
        replies = []
    elif line:
        assert len(verdict) == 1 and verdict[0] in LINE_REASONS, name
        replies = [reply(pol, None, verdict[0])]
    else:
        assert len(verdict) == len(elements), name
        replies = [reply(pol, e, r) for e, r in zip(elements, verdict)]
    if minted:
        # The minter's insertion, independently: before the closing brace,
        # after a comma unless the object is empty.
        for e, s, w in zip(elements, texts, wires):
            body = e.stripped()
            close = body.rindex("}")
            sep = "," if body[body.index("{") + 1:close].strip() else ""
            assert body[:close] + sep + '"pow":"' + s[0] + '"' + body[close:] == w, name
    v = {"name": name, "wire": wire}
    v.update({
        "policy": pol,
        "stripped": stripped if strips and not line else None,
        "forward": stripped if accepted else None,
        "verdict": verdict,
        "batch_reply": batch is not None and not line,
        "replies": replies,
        "again": list(again) if again else None,
        "minted": minted,
        "stamps": stamps,
    })
    for r in replies:
        if r["method"] is None:
            del r["method"]
    return v


def obj(inner, method, id, stamp=None):
    """An object whose stamp member is its last, as a minter inserts it."""
    return E("{" + inner + OPEN + ',"pow":"' + HOLE + '"' + CLOSE + "}", [stamp or S()], method, id)


def main():
    free = policy(method_prices={"server.ping": 0})
    ping = "server.ping"
    sub = "blockchain.scripthash.subscribe"
    vs = [
        # Stamp placement and removal.
        vector("version request", [E('{"jsonrpc":"2.0","method":"server.version","id":0,"params":["electrum/4.3.4","1.4"]' + OPEN + ',"pow":"@"' + CLOSE + "}",
                                     [S(work=256)], "server.version", "0")],
               policy(price=256), minted=True, again=["replayed"]),
        vector("no params", [E('{"jsonrpc":"2.0","method":"server.banner","id":7' + OPEN + ',"pow":"@"' + CLOSE + "}",
                               [S(work=4096)], "server.banner", "7")],
               policy(price=4096), minted=True),
        vector("stamp the only member: {} remains, which has no method", [E("{" + OPEN + '"pow":"@"' + CLOSE + "}", [S(resource="127.0.0.1:50001")])],
               policy(resource="127.0.0.1:50001"), verdict=["invalid_request"], minted=True),
        vector("stamp the only member, with whitespace", [E("{ " + OPEN + '"pow" : "@"' + CLOSE + " }", [S()])],
               verdict=["invalid_request"]),
        vector("stamp the first member", [E("{" + OPEN + '"pow":"@",' + CLOSE + '"jsonrpc":"2.0","method":"server.ping","id":2}', [S()], ping, "2")]),
        vector("stamp the first member, with whitespace", [E("{ " + OPEN + '"pow" : "@" ,' + CLOSE + ' "id":4, "method":"server.ping" }', [S()], ping, "4")]),
        vector("stamp a middle member", [E('{"jsonrpc":"2.0"' + OPEN + ',"pow":"@"' + CLOSE + ',"method":"server.ping","id":3}', [S()], ping, "3")]),
        vector("stamp a middle member, with whitespace", [E('{ "id":5 ' + OPEN + ', "pow" : "@"' + CLOSE + ' , "method":"server.ping" }', [S()], ping, "5")]),
        vector("whitespace and unicode", [E('{ "method" : "x", "params" : ["caf\u00e9 \\u00e9", "pow"] , "id":1 ' + OPEN + ',"pow":"@"' + CLOSE + "}",
                                            [S(work=1000, salt=bytes(16), resource="[::1]:50002")], "x", "1")],
               policy(resource="[::1]:50002", price=1000), minted=True),
        vector("whitespace around the object is forwarded, not hashed", [obj('"id":6,"method":"server.ping"', ping, "6")],
               prefix=" \t", suffix=" \r", minted=True),
        vector("long resource", [E('{"method":"blockchain.scripthash.subscribe","id":3,"params":["15ce6896d0a5e8f6d4f8b5a8b3f2b3c9c3d5a0b7c1e2f3a4b5c6d7e8f9a041c4"]' + OPEN + ',"pow":"@"' + CLOSE + "}",
                                   [S(work=2**12)], sub, "3")],
               policy(resource="a" * 200 + ".example:1", price=2**12), minted=True),
        vector("escaped member name: \\u0070ow is the stamp member", [E('{"id":8,"method":"server.ping"' + OPEN + ',"\\u0070ow":"@"' + CLOSE + "}", [S()], ping, "8")],
               again=["replayed"]),
        vector("escaped member name, first member", [E("{" + OPEN + '"p\\u006f\\u0077":"@",' + CLOSE + '"id":9,"method":"server.ping"}', [S()], ping, "9")]),
        vector("pow inside params is not the stamp", [E('{"id":10,"method":"server.ping","params":[{"pow":"x"}]' + OPEN + ',"pow":"@"' + CLOSE + "}", [S()], ping, "10")],
               minted=True),

        # Batches.
        vector("batch of two", [obj('"id":1,"method":"server.ping","params":[1]', ping, "1"),
                                obj('"id":2,"method":"server.ping","params":[2]', ping, "2")],
               batch=("[", ",", "]"), verdict=["accepted", "accepted"], again=["replayed", "batch"], minted=True),
        vector("batch, stamps first and in the middle, with whitespace",
               [E("{" + OPEN + '"pow":"@",' + CLOSE + '"id":11,"method":"server.ping"}', [S()], ping, "11"),
                E('{"id":12' + OPEN + ',"pow":"@"' + CLOSE + ',"method":"server.ping"}', [S()], ping, "12")],
               batch=("[ ", " , ", " ]"), verdict=["accepted", "accepted"]),
        vector("batch, one element without a stamp",
               [obj('"id":13,"method":"server.ping"', ping, "13"), E('{"id":14,"method":"server.ping"}', [], ping, "14")],
               batch=("[", ",", "]"), verdict=["batch", "missing"], again=["batch", "missing"]),
        vector("batch, one element not an object",
               [obj('"id":15,"method":"server.ping"', ping, "15"), E("5")],
               batch=("[", ",", "]"), verdict=["batch", "invalid_request"]),
        vector("batch, the same request twice: the first claim is released",
               [obj('"id":16,"method":"server.ping"', ping, "16"), obj('"id":16,"method":"server.ping"', ping, "16")],
               batch=("[", ",", "]"), verdict=["batch", "replayed"], again=["batch", "replayed"]),

        # Time: accepted from now - window to now + skew, inclusive; the
        # verifier's clock is truncated to whole seconds.
        vector("time now - window", [obj('"id":20,"method":"server.ping"', ping, "20", S(time=T - 300))]),
        vector("time now - window - 1", [obj('"id":21,"method":"server.ping"', ping, "21", S(time=T - 301))], verdict=["expired"]),
        vector("time now + skew", [obj('"id":22,"method":"server.ping"', ping, "22", S(time=T + 30))]),
        vector("time now + skew + 1", [obj('"id":23,"method":"server.ping"', ping, "23", S(time=T + 31))], verdict=["future"]),
        vector("time 0", [obj('"id":24,"method":"server.ping"', ping, "24", S(time=0))], verdict=["expired"]),
        vector("time 0 at clock 0", [obj('"id":25,"method":"server.ping"', ping, "25", S(time=0))], policy(now=0)),
        vector("time 2^63-1, the largest", [obj('"id":26,"method":"server.ping"', ping, "26", S(time=2**63 - 1))], verdict=["future"]),
        vector("time 2^63", [obj('"id":27,"method":"server.ping"', ping, "27",
                                 S(raw="1:16:9223372036854775808:000102030405060708090a0b0c0d0e0f:0:" + RES))], verdict=["malformed"]),
        vector("time -1", [obj('"id":28,"method":"server.ping"', ping, "28",
                               S(raw="1:16:-1:000102030405060708090a0b0c0d0e0f:0:" + RES))], verdict=["malformed"]),

        # Work and counter.
        vector("work equal to the price", [obj('"id":30,"method":"server.ping"', ping, "30", S(work=64))], policy(price=64)),
        vector("work below the price: curable, re-mint at data.price", [obj('"id":31,"method":"server.ping"', ping, "31", S(work=63))],
               policy(price=64), verdict=["insufficient"]),
        vector("digest does not prove the claim", [E('{"jsonrpc":"2.0","method":"server.ping","id":9' + OPEN + ',"pow":"@"' + CLOSE + "}",
                                                     [S(work=2**20, proves=False)], ping, "9")],
               policy(price=2**20), verdict=["insufficient"], minted=True),
        vector("work 1 always proves", [E('{"id":1,"method":"server.ping"' + OPEN + ',"pow":"@"' + CLOSE + "}", [S(work=1, time=0)], ping, "1")],
               policy(resource="h:1", price=1, now=0), minted=True),
        vector("work 2^64-1, the largest", [obj('"id":32,"method":"server.ping"', ping, "32", S(work=2**64 - 1, proves=False))],
               verdict=["insufficient"]),
        vector("work 0", [obj('"id":33,"method":"server.ping"', ping, "33",
                              S(raw="1:0:1763937600:000102030405060708090a0b0c0d0e0f:0:" + RES))], verdict=["malformed"]),
        vector("work 2^64", [obj('"id":34,"method":"server.ping"', ping, "34",
                                 S(raw="1:18446744073709551616:1763937600:000102030405060708090a0b0c0d0e0f:0:" + RES))], verdict=["malformed"]),
        vector("counter 2^64-1, the largest", [obj('"id":35,"method":"server.ping"', ping, "35", S(work=1, counter=2**64 - 1))],
               policy(price=1)),
        vector("counter 2^64", [obj('"id":36,"method":"server.ping"', ping, "36",
                                    S(raw="1:16:1763937600:000102030405060708090a0b0c0d0e0f:18446744073709551616:" + RES))], verdict=["malformed"]),

        # Stamp text.
        vector("stamp written with a JSON escape", [obj('"id":40,"method":"server.ping"', ping, "40", S(escape=True))], verdict=["malformed"]),
        vector("resource with a space", [obj('"id":41,"method":"server.ping"', ping, "41",
                                             S(raw="1:16:1763937600:000102030405060708090a0b0c0d0e0f:0:electrum example:1"))], verdict=["malformed"]),
        vector("resource differing in case", [obj('"id":42,"method":"server.ping"', ping, "42", S(resource=RES.upper()))], verdict=["wrong_resource"]),
        vector("pow given twice", [E('{"id":43,"method":"server.ping","pow":"@","pow":"@"}', [S(raw="x"), S(raw="y")], ping, "43")],
               verdict=["malformed"], strips=False),

        # Free methods (price 0).
        vector("free method: stamp removed unchecked, not recorded", [obj('"id":50,"method":"server.ping"', ping, "50")], free,
               again=["accepted"]),
        vector("free method: a pow that is not a string is removed", [E('{"id":51,"method":"server.ping"' + OPEN + ',"pow":{"v":[1]}' + CLOSE + "}", [], ping, "51")],
               free, again=["accepted"]),
        vector("free method: an escaped stamp is removed", [obj('"id":52,"method":"server.ping"', ping, "52", S(escape=True))], free),
        vector("free method: pow given twice", [E('{"id":53,"method":"server.ping","pow":1,"p\\u006fw":"@"}', [S(raw="x")], ping, "53")],
               free, verdict=["malformed"], strips=False),
        vector("free method without a stamp", [E('{"id":54,"method":"server.ping"}', [], ping, "54")], free),

        # What a refusal echoes.
        vector("id given twice: invalid_request echoes the last", [E('{"id":60,"method":"server.ping","\\u0069d":[ 61 , "x" ]}', [], ping, '[ 61 , "x" ]')],
               verdict=["invalid_request"]),
        vector("id copied byte for byte", [E('{"id": 1.50e+3 ,"method":"server.ping"}', [], ping, "1.50e+3")], verdict=["missing"]),
        vector("id string copied with its escapes", [E('{"id":"a\\u0062\\/","method":"server.ping"}', [], ping, '"a\\u0062\\/"')],
               verdict=["missing"]),
        vector("no id: null", [E('{"method":"server.ping"}', [], ping, "null")], verdict=["missing"]),
        vector("method given twice", [E('{"id":62,"method":"server.ping","m\\u0065thod":"server.ping"}', [], None, "62")],
               verdict=["invalid_request"]),
        vector("method not a string", [E('{"id":63,"method":7}', [], None, "63")], verdict=["invalid_request"]),
        vector("method the empty string: data has no method", [E('{"id":64,"method":""}', [], "", "64")], verdict=["missing"]),
        vector("method names compared after unescaping", [E('{"id":65,"method":"server.\\u0070ing"}', [], ping, "65")], free),
        vector("method of 257 bytes: echoed cut to 255 bytes and \u2026", [E('{"id":66,"method":"' + "a" * 255 + '\u00e9"}', [], "a" * 255 + "\u00e9", "66")],
               verdict=["missing"]),
        vector("method of 256 bytes: echoed whole", [E('{"id":67,"method":"' + "a" * 256 + '"}', [], "a" * 256, "67")], verdict=["missing"]),
        vector("method with a lone surrogate escape: decoded as U+FFFD", [E('{"id":68,"method":"\\ud800"}', [], "\ufffd", "68")],
               verdict=["missing"]),

        # JSON.
        vector("nesting 512 deep, the outer object counted", [obj('"id":70,"method":"server.ping","params":' + "[" * 511 + "]" * 511, ping, "70")]),
        vector("nesting 513 deep", [obj('"id":71,"method":"server.ping","params":' + "[" * 512 + "]" * 512, ping, "71")], verdict=["parse"], line=True),
        vector("batch nesting 512 deep, the outer array counted", [obj('"id":72,"method":"server.ping","params":' + "[" * 510 + "]" * 510, ping, "72")],
               batch=("[", ",", "]"), verdict=["accepted"]),
        vector("batch nesting 513 deep", [obj('"id":73,"method":"server.ping","params":' + "[" * 511 + "]" * 511, ping, "73")],
               batch=("[", ",", "]"), verdict=["parse"], line=True),
        vector("lone surrogate escape in a string is valid JSON", [obj('"id":74,"method":"server.ping","params":["\\udc00"]', ping, "74")]),
        vector("byte-order mark before the object", [obj('"id":75,"method":"server.ping"', ping, "75")], prefix="\ufeff", verdict=["parse"], line=True),
        vector("a JSON scalar", [], raw_line="42", verdict=["invalid_request"]),
        vector("an empty batch", [], raw_line="[ ]", verdict=["invalid_request"]),
        vector("a batch over max_batch, refused before the rest is parsed", [], policy(max_batch=2), raw_line="[1,2,3 not json",
               verdict=["invalid_request"]),
        vector("a batch over max_batch: a trailing comma", [], policy(max_batch=2), raw_line="[1,2,]", verdict=["invalid_request"]),
        vector("a syntax error before max_batch is passed", [], policy(max_batch=2), raw_line="[1,2 x", verdict=["parse"]),
        vector("a batch of non-objects", [E("1"), E("2")], batch=("[", ",", "]"), verdict=["invalid_request", "invalid_request"]),
    ]
    print(json.dumps(vs, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
