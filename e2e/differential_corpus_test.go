package e2e

import (
	"strconv"
	"strings"
)

// The differential test's corpus (differential_test.go): raw requests, each
// sent as it is through nginx and both of ferry's front-ends. In a raw
// request, {T} stands for the request's tag: the backend attributes what it
// receives by it, so every request of the corpus carries it, in the query
// or, where the query is under test, as a "/t/{T}/" path segment.

// diffCase is one raw input. deliberate, when set, says why ferry answers
// differently from nginx on purpose, with the RFC section that allows or
// requires it (docs/forwarding-faults.md lists them): the disagreement is
// then reported, not failed, as long as ferry's two front-ends agree.
type diffCase struct {
	name       string
	raw        string
	requests   int // top-level requests the client sends (answers to read): 1 if 0
	deliberate string
	// legal and mutation name the parts of a pipelined case.
	legal, mutation string
}

const crlf = "\r\n"

// withTag is s as sent: {T} replaced by a case tag (always six bytes).
func withTag(s string) string { return strings.ReplaceAll(s, "{T}", "c0000z") }

// getReq is a keep-alive GET of path (which should carry {T}) with extra
// header lines.
func getReq(path string, header ...string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: ferry.test\r\n" + strings.Join(header, "") + crlf
}

// postReq is a POST with the given framing header lines and raw body.
func postReq(path, body string, header ...string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: ferry.test\r\n" + strings.Join(header, "") + crlf + body
}

// smuggled is a request hidden in a body; a proxy that forwards it as a
// request of its own has been smuggled past.
const smuggled = "GET /smuggled?tag={T}-s HTTP/1.1\r\nHost: ferry.test\r\n\r\n"

// legalVariants are unusual but valid requests. Each mutation is also sent
// pipelined after each of them: a proxy must judge the second request of a
// connection as strictly as the first (issue 12, bug 8).
var legalVariants = []diffCase{
	{name: "plain-get", raw: getReq("/legal?tag={T}")},
	{name: "chunk-extension-80", raw: postReq("/legal?tag={T}", "5;"+strings.Repeat("e", 78)+"\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n")},
	{name: "chunk-size-70-spaces", raw: postReq("/legal?tag={T}", "5"+strings.Repeat(" ", 70)+"\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n")},
	{name: "content-length-leading-zeros", raw: postReq("/legal?tag={T}", "hello", "Content-Length: 000000000000000000005\r\n")},
	{name: "te-value-70-spaces", raw: postReq("/legal?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding:"+strings.Repeat(" ", 70)+"chunked\r\n")},
	{name: "cl-value-70-spaces", raw: postReq("/legal?tag={T}", "hello", "Content-Length:"+strings.Repeat(" ", 70)+"5\r\n")},
	{name: "long-header-4k", raw: getReq("/legal?tag={T}", "X-Long: "+strings.Repeat("v", 4000)+"\r\n")},
	{name: "chunked-with-trailer", raw: postReq("/legal?tag={T}", "5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n", "Transfer-Encoding: chunked\r\n")},
}

// mutations are the hostile or odd requests: request smuggling in every
// disguise, bad framing, odd bytes, odd hosts and targets.
var mutations = []diffCase{
	// Content-Length and Transfer-Encoding together (RFC 9112 §6.1, §6.3).
	{name: "cl-and-te", raw: postReq("/m?tag={T}", "0\r\n\r\n"+smuggled, "Content-Length: 6\r\n", "Transfer-Encoding: chunked\r\n")},
	{name: "te-and-cl", raw: postReq("/m?tag={T}", "0\r\n\r\n"+smuggled, "Transfer-Encoding: chunked\r\n", "Content-Length: 6\r\n")},
	{name: "two-different-cls", raw: postReq("/m?tag={T}", "hello", "Content-Length: 5\r\n", "Content-Length: 6\r\n")},
	{name: "two-equal-cls", raw: postReq("/m?tag={T}", "hello", "Content-Length: 5\r\n", "Content-Length: 5\r\n")},
	{name: "cl-list", raw: postReq("/m?tag={T}", "hello", "Content-Length: 5, 5\r\n")},
	{name: "cl-plus-sign", raw: postReq("/m?tag={T}", "hello", "Content-Length: +5\r\n")},
	{name: "cl-hex", raw: postReq("/m?tag={T}", "hello", "Content-Length: 0x5\r\n")},
	{name: "cl-negative", raw: postReq("/m?tag={T}", "hello", "Content-Length: -5\r\n")},
	{name: "cl-overflow", raw: postReq("/m?tag={T}", "hello", "Content-Length: 99999999999999999999999\r\n")},
	{name: "cl-space-before-colon", raw: postReq("/m?tag={T}", "hello", "Content-Length : 5\r\n")},
	{name: "te-space-before-colon", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding : chunked\r\n", "Content-Length: 3\r\n")},
	{name: "te-xchunked", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: xchunked\r\n")},
	{name: "te-chunked-identity", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked, identity\r\n")},
	{name: "te-identity-chunked", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: identity, chunked\r\n")},
	{name: "te-twice", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n", "Transfer-Encoding: identity\r\n"),
		deliberate: "RFC 9112 §6.1: a transfer coding the server does not understand (identity, after chunked) SHOULD get 501; nginx answers 400"},
	{name: "te-upper-case", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: CHUNKED\r\n")},
	{name: "te-tab", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding:\tchunked\r\n"),
		deliberate: "RFC 9110 §5.6.3: HTAB is optional white space, the value is chunked; nginx 1.22 answers 501"},
	{name: "te-vertical-tab", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: \x0bchunked\r\n"),
		deliberate: "RFC 9110 §5.5: a control character makes the field value invalid: 400; nginx reads an unknown coding: 501"},
	{name: "te-folded", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding:\r\n chunked\r\n")},
	{name: "te-chunked-twice", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n", "Transfer-Encoding: chunked\r\n"),
		deliberate: "RFC 9112 §6.1: chunked applied twice; both refuse and close, ferry with 501 (a coding it does not implement), nginx with 400"},
	{name: "te-quoted", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: \"chunked\"\r\n")},
	{name: "te-empty-list-element", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: , chunked\r\n")},
	{name: "te-nul", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked\x00\r\n", "Content-Length: 3\r\n")},
	{name: "te-underscore-name", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer_Encoding: chunked\r\n", "Content-Length: 3\r\n"),
		deliberate: "as underscore-field-name: ferry refuses a name with _ (400), nginx drops the field and frames by Content-Length"},
	{name: "cl-folded", raw: postReq("/m?tag={T}", "hello", "Content-Length:\r\n 5\r\n")},
	{name: "cl-no-space", raw: postReq("/m?tag={T}", "hello", "Content-Length:5\r\n")},
	{name: "cl-trailing-comma", raw: postReq("/m?tag={T}", "hello", "Content-Length: 5,\r\n")},
	{name: "te-on-http10", raw: strings.Replace(postReq("/m?tag={T}", "5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n"), "HTTP/1.1", "HTTP/1.0", 1)},
	{name: "te-on-get", raw: "GET /m?tag={T} HTTP/1.1\r\nHost: ferry.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
	// Chunk lines (RFC 9112 §7.1).
	{name: "chunk-size-hex-prefix", raw: postReq("/m?tag={T}", "0x5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n")},
	{name: "chunk-size-overflow", raw: postReq("/m?tag={T}", "ffffffffffffffffff1\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n")},
	{name: "chunk-size-bare-lf", raw: postReq("/m?tag={T}", "5\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n"),
		deliberate: "RFC 9112 §7.1: a chunk line ends in CRLF (the bare-LF leniency of §2.2 is for the head only); lenient chunk parsing is a known smuggling vector; nginx accepts it"},
	{name: "chunk-data-too-long", raw: postReq("/m?tag={T}", "3\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n")},
	{name: "chunk-no-crlf-after-data", raw: postReq("/m?tag={T}", "5\r\nhelloXX0\r\n\r\n", "Transfer-Encoding: chunked\r\n")},
	{name: "chunk-ext-bare-cr", raw: postReq("/m?tag={T}", "5;a\rb\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n")},
	{name: "chunk-ext-8k", raw: postReq("/m?tag={T}", "5;"+strings.Repeat("e", 8192)+"\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n"),
		deliberate: "RFC 9112 §7.1.1: a server ought to limit chunk extensions and answer 4xx beyond; nginx does not limit them"},
	{name: "chunk-trailer-content-length", raw: postReq("/m?tag={T}", "5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n", "Transfer-Encoding: chunked\r\n")},
	// Odd bytes and lines in the head (RFC 9112 §2.2, §5, RFC 9110 §5.5).
	{name: "bare-lf-head", raw: "GET /m?tag={T} HTTP/1.1\nHost: ferry.test\n\n"},
	{name: "bare-cr-in-value", raw: getReq("/m?tag={T}", "X-A: a\rb\r\n")},
	{name: "nul-in-value", raw: getReq("/m?tag={T}", "X-A: a\x00b\r\n")},
	{name: "nul-in-target", raw: "GET /m?tag={T}&a=\x00 HTTP/1.1\r\nHost: ferry.test\r\n\r\n"},
	{name: "obs-fold", raw: getReq("/m?tag={T}", "X-A: a\r\n b\r\n")},
	{name: "leading-space-first-field", raw: "GET /m?tag={T} HTTP/1.1\r\n Host: ferry.test\r\nHost: ferry.test\r\n\r\n"},
	{name: "space-in-field-name", raw: getReq("/m?tag={T}", "X A: b\r\n")},
	{name: "underscore-field-name", raw: getReq("/m?tag={T}", "X_Forwarded_For: 6.6.6.6\r\n"),
		deliberate: "RFC 9110 §5.1 allows _ in a name, but a CGI-style backend reads X_Forwarded_For as X-Forwarded-For (RFC 3875 §4.1.18): ferry refuses the request (400), nginx drops the field and forwards"},
	{name: "long-line-6k", raw: getReq("/m?tag={T}", "X-Long: "+strings.Repeat("v", 6000)+"\r\n")},
	{name: "long-line-70k", raw: getReq("/m?tag={T}", "X-Long: "+strings.Repeat("v", 70000)+"\r\n")},
	{name: "long-target-9k", raw: getReq("/m?tag={T}&p=" + strings.Repeat("p", 9000)),
		deliberate: "RFC 9112 §3 sets no limit (8000 octets at least are RECOMMENDED): ferry's is limits.max_header_bytes (64 KiB), nginx's large_client_header_buffers 8k"},
	{name: "lower-case-method", raw: "get /m?tag={T} HTTP/1.1\r\nHost: ferry.test\r\n\r\n",
		deliberate: "RFC 9110 §9.1: methods are case-sensitive tokens, \"get\" is an extension method a proxy forwards; nginx refuses lower-case methods"},
	{name: "version-http-1-10", raw: "GET /m?tag={T} HTTP/1.10\r\nHost: ferry.test\r\n\r\n",
		deliberate: "RFC 9112 §2.3: HTTP-version is HTTP/DIGIT.DIGIT, HTTP/1.10 is invalid: 400; nginx reads it as 1.10"},
	{name: "version-http-2-0", raw: "GET /m?tag={T} HTTP/2.0\r\nHost: ferry.test\r\n\r\n"},
	{name: "two-spaces-in-request-line", raw: "GET  /m?tag={T} HTTP/1.1\r\nHost: ferry.test\r\n\r\n",
		deliberate: "RFC 9112 §3: single SP separators; whitespace-lenient parsing MAY be done but risks smuggling between recipients, ferry refuses (400); nginx accepts"},
	{name: "leading-crlf", raw: "\r\n" + getReq("/m?tag={T}")},
	// Hosts and targets (RFC 9112 §3.2).
	{name: "empty-host", raw: "GET /m?tag={T} HTTP/1.1\r\nHost:\r\n\r\n"},
	{name: "two-hosts", raw: "GET /m?tag={T} HTTP/1.1\r\nHost: ferry.test\r\nHost: other.test\r\n\r\n"},
	{name: "no-host-http11", raw: "GET /m?tag={T} HTTP/1.1\r\n\r\n"},
	{name: "no-host-http10", raw: "GET /m?tag={T} HTTP/1.0\r\n\r\n",
		deliberate: "RFC 9112 §3.2: the upstream request is HTTP/1.1, where Host is required; a client without an authority sends it empty: ferry forwards \"Host:\" empty (never the upstream's address), nginx (Host $host) drops the empty field"},
	{name: "absolute-form-other-host", raw: "GET http://other.example/m?tag={T} HTTP/1.1\r\nHost: ferry.test\r\n\r\n"},
	{name: "query-sub-delims", raw: getReq("/t/{T}/q?x=!$'()*,;=:@/?&y=%20")},
	{name: "query-bad-escapes", raw: getReq("/t/{T}/q?a=%zz&b=%")},
	{name: "path-dot-segments", raw: getReq("/t/{T}/a/../b?c=1"),
		deliberate: "RFC 3986 §5.2.4: ferry removes dot segments and forwards the path it routed on (README, Paths), so routing and backend agree; nginx forwards the raw target"},
	// A body a server must not take for a request.
	{name: "get-with-cl-body", raw: getReq("/m?tag={T}", "Content-Length: "+strconv.Itoa(len(withTag(smuggled)))+"\r\n") + smuggled},
	{name: "expect-100-continue", raw: postReq("/m?tag={T}", "hello", "Content-Length: 5\r\n", "Expect: 100-continue\r\n")},
}

// diffCorpus is every case: the legal variants and the mutations alone,
// then each mutation pipelined after each legal variant.
func diffCorpus() []diffCase {
	var out []diffCase
	for _, l := range legalVariants {
		out = append(out, diffCase{name: "alone/" + l.name, raw: l.raw})
	}
	for _, m := range mutations {
		out = append(out, diffCase{name: "alone/" + m.name, raw: m.raw, deliberate: m.deliberate})
	}
	for _, l := range legalVariants {
		for _, m := range mutations {
			out = append(out, diffCase{name: l.name + "+" + m.name,
				raw: strings.ReplaceAll(l.raw, "{T}", "{T}-a") + m.raw, requests: 2, deliberate: m.deliberate,
				legal: "alone/" + l.name, mutation: "alone/" + m.name})
		}
	}
	return out
}
