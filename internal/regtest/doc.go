// Package regtest is a small in-memory Bitcoin regtest chain served over
// the Electrum protocol (JSON-RPC 2.0, one JSON message per '\n'-terminated
// line over TCP). It is a test fixture, not product code: it lets a real
// Electrum 4.3.4 wallet (electrum --regtest --oneserver) connect, sync, show
// a confirmed balance and broadcast payments, and it records every request
// line it receives.
//
// # Chain
//
// The chain starts at the real regtest genesis block (hash [GenesisHash]).
// Every further block has version 0x20000000, the previous header's
// double-SHA256 as prev hash, the real merkle root of its transactions,
// time = previous + 600 s, bits 0x207fffff and nonce 0 (regtest clients do
// not check proof of work). Transactions are real: coinbases are legacy
// serialized (version 1, null prevout, scriptSig = BIP34 height push plus
// the tag "/regtest-fixture/", one output, locktime 0), txids are the
// double-SHA256 of the non-witness serialization, and merkle proofs are
// computed from the block's transaction list. Blocks carry no segwit
// witness commitment; no Electrum client checks it.
//
// [New] mines, after genesis:
//
//   - Config.InitialBlocks blocks (default 1) whose coinbase pays
//     Config.CoinbaseValue (default 50 BTC) to Config.Addresses[i%len], at
//     heights 1…InitialBlocks;
//   - Config.MaturityBlocks blocks (default 100 = [CoinbaseMaturity]) whose
//     coinbase pays to [BurnScript] (OP_TRUE), so the wallet's coinbases
//     mature.
//
// # What a wallet sees
//
// Electrum treats a coinbase output of height h as "unmatured" until its
// local tip is at least h+99 (h + COINBASE_MATURITY > tip+1 means
// immature), the same rule bitcoind applies to spends. With the defaults
// the tip is 101, so an Electrum wallet owning Addresses[0] shows
// getbalance {"confirmed": "50"} with one coinbase transaction at height 1
// in its history, and it can spend it. With MaturityBlocks < 99 the
// coinbases that are too recent are reported as {"unmatured": …} instead
// and cannot be spent yet; [Server.Mine] can add the missing blocks later.
//
// # Methods
//
// Served methods and reply shapes follow ElectrumX for protocol 1.4:
// server.version (always ["regtest-fixture 0.1","1.4"]), server.ping,
// server.features, server.banner, server.donation_address,
// server.peers.subscribe, blockchain.headers.subscribe,
// blockchain.block.header, blockchain.block.headers (at most 2016, clipped
// to the tip; a non-zero cp_height is an error), blockchain.estimatefee
// (0.0001), blockchain.relayfee (1e-05), mempool.get_fee_histogram ([]),
// blockchain.scripthash.{subscribe,unsubscribe,get_history,get_balance,
// listunspent,get_mempool}, blockchain.transaction.get (non-verbose only),
// blockchain.transaction.get_merkle and blockchain.transaction.broadcast.
// Unknown methods get -32601, unparsable JSON -32700 with id null, batches
// an array reply. A script hash's history lists the transactions that pay
// to the script or spend one of its outputs, confirmed ones in block order,
// then mempool ones (height 0, or -1 when spending a mempool output, with
// their fee); its status is hex(sha256 of "txid:height:" for each item) or
// null.
//
// A broadcast transaction (legacy or segwit serialization) must parse and
// pass bitcoind's context checks except scripts and signatures: known
// unspent inputs, mature coinbase inputs, no duplicate inputs, outputs not
// above inputs. It then enters the mempool and subscribers of touched
// script hashes are notified. [Server.Mine] confirms the mempool in a new
// block and notifies header subscribers (once, with the new tip) and
// subscribers whose script hash status changed.
//
// # Connections and recording
//
// Each connection has one reader goroutine and a write mutex; requests of
// a connection are answered in order, lines longer than 4 MiB are dropped
// with a -32600 error, and a reply computed before a state change always
// reaches the wire before the notifications about that change. Every
// received request line is recorded byte for byte (without its '\n'), in
// arrival order across connections: see [Server.Requests] and
// Config.RequestLog. [Server.Close] closes listeners and connections and
// waits for all connection goroutines.
//
// With Config.Hold (ElectrumXHold, 1 s, as ElectrumX ≥ 1.18 does) answers
// are written as ElectrumX's padded transport writes them: once a
// connection has been sent its first 1 KiB, small answers are held back
// until 1 KiB is waiting or the hold since the last write ends, and every
// write is padded with spaces to a power of two of at least 1 KiB.
package regtest
