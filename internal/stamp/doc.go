// Package stamp implements the electrum-hashcash proof-of-work stamp, format
// version 1. It is the wire specification in code; docs/wire-format.md says
// the same in prose.
//
// # Stamp text
//
// A stamp travels as the JSON string value of member "pow" of a JSON-RPC
// request object. Its text is six fields separated by ':':
//
//		1:<work>:<time>:<salt>:<counter>:<resource>
//
//	  - "1" is the format version.
//	  - work is the amount of work the stamp claims: the expected number of
//	    hash attempts needed to mint it, decimal, 1 to 2^64-1.
//	  - time is the minting time in Unix seconds, decimal.
//	  - salt is 16 random bytes as 32 lowercase hex digits.
//	  - counter is the value the minter searched for, decimal, 0 to 2^64-1.
//	  - resource names the server the stamp is for, for example
//	    "electrum.example.org:50002": 1 to 255 characters from
//	    [A-Za-z0-9.-_:[]]. It is the last field and may itself contain ':'.
//
// Decimal fields have no sign and no leading zeros.
//
// # Hashed input
//
// The digest of a stamp is SHA-256 over this byte string (integers are
// unsigned big-endian, time is a two's-complement int64):
//
//	offset  size  field
//	0       17    the ASCII tag "electrum-hashcash"
//	17      1     version, 0x01
//	18      8     work
//	26      8     time
//	34      16    salt
//	50      32    body hash: SHA-256 of the request object as forwarded
//	82      1     length of resource, n
//	83      n     resource, ASCII
//	83+n    z     zero bytes, so that 83+n+z is the next multiple of 64
//	83+n+z  8     counter
//
// Everything before the counter fills whole 64-byte SHA-256 blocks, so a
// minter hashes it once and recomputes only the final block per attempt.
//
// The body is the request object's text, from its opening to its closing
// brace, with the stamp member removed as described in package rpcline:
// exactly what the verifier forwards of it. Whitespace around the object on
// the line (a carriage return before the line feed) is forwarded but not
// part of the body. For a batch, every element has its own stamp whose body
// is that element's object text without its stamp member.
//
// # Verdict
//
// Let v be the first 8 bytes of the digest as a big-endian unsigned integer.
// The stamp proves its claimed work W when v*W < 2^64, which a random digest
// does with probability 1/W (to within 2^-64): the expected number of
// attempts is W, the price scales linearly, and because W is hashed, a lucky
// digest cannot be passed off as more work than was claimed.
package stamp
