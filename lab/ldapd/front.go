package ldapd

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// maxMessage bounds one LDAP message (a search entry or an add request with
// certificates is a few KiB; 16 MiB leaves room for anything realistic).
const maxMessage = 16 << 20

// LDAP protocolOp tags (RFC 4511 §4.2–4.14), application class.
const (
	tagBindRequest     = 0
	tagUnbindRequest   = 2
	tagSearchRequest   = 3
	tagModifyRequest   = 6
	tagAddRequest      = 8
	tagDelRequest      = 10
	tagModifyDNRequest = 12
	tagModifyDNResp    = 13
	tagCompareRequest  = 14
	tagCompareResponse = 15
	tagAbandonRequest  = 16
	tagExtendedRequest = 23
	tagExtendedResp    = 24
)

const startTLSOID = "1.3.6.1.4.1.1466.20037"

// Result codes used by the front itself.
const (
	resultSuccess            = 0
	resultOperationsError    = 1
	resultProtocolError      = 2
	resultUnwillingToPerform = 53
	resultOther              = 80
)

// responseTags maps each request's protocolOp tag to its response's; unbind
// and abandon have none.
var responseTags = map[int]int{
	tagBindRequest:     1,
	tagSearchRequest:   5, // searchResDone
	tagModifyRequest:   7,
	tagAddRequest:      9,
	tagDelRequest:      11,
	tagModifyDNRequest: tagModifyDNResp,
	tagCompareRequest:  tagCompareResponse,
	tagExtendedRequest: tagExtendedResp,
}

// frontConn relays one client connection to the gldap backend.
type frontConn struct {
	s       *Server
	backend net.Conn

	wmu    sync.Mutex    // serializes writes to the client
	client net.Conn      // replaced by its TLS form after StartTLS
	out    *bufio.Writer // buffers writes to client
	isTLS  bool
}

// serveConn relays c until either side closes or a fault drops it.
func (s *Server) serveConn(c net.Conn, isTLS bool) {
	defer c.Close()
	if s.fault("connect") != nil {
		return
	}
	if isTLS {
		if err := c.(*tls.Conn).Handshake(); err != nil {
			return
		}
	}
	b, err := net.Dial("tcp", s.backAddr)
	if err != nil {
		return
	}
	if !s.track(b) {
		_ = b.Close()
		return
	}
	defer s.untrack(b)
	defer b.Close()
	f := &frontConn{s: s, backend: b, client: c, out: bufio.NewWriter(c), isTLS: isTLS}

	done := make(chan struct{})
	go func() {
		defer close(done)
		f.relayReplies()
	}()
	f.relayRequests()
	_ = b.Close()
	f.wmu.Lock()
	_ = f.client.Close()
	f.wmu.Unlock()
	<-done
}

func (s *Server) fault(op string) error {
	if s.cfg.Faults == nil {
		return nil
	}
	return s.cfg.Faults.Before(op)
}

// relayReplies copies whole messages from the backend to the client,
// coalescing the messages that arrive together (search entries and their
// done message) into one write.
func (f *frontConn) relayReplies() {
	r := bufio.NewReader(f.backend)
	for {
		msg, err := readMessage(r)
		if err != nil {
			f.wmu.Lock()
			_ = f.client.Close()
			f.wmu.Unlock()
			return
		}
		if err := f.write(msg, r.Buffered() == 0); err != nil {
			return
		}
	}
}

// write sends msg to the client, flushing unless more is about to follow.
func (f *frontConn) write(msg []byte, flush bool) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if _, err := f.out.Write(msg); err != nil {
		return err
	}
	if flush {
		return f.out.Flush()
	}
	return nil
}

// relayRequests reads client requests, applies faults and intercepts, and
// forwards the rest to the backend. It returns when the connection ends.
func (f *frontConn) relayRequests() {
	f.wmu.Lock()
	r := bufio.NewReader(f.client)
	f.wmu.Unlock()
	for {
		msg, err := readMessage(r)
		if err != nil {
			return
		}
		req, err := classify(msg)
		if err != nil {
			return // not LDAP: drop, as gldap would
		}
		if err := f.s.fault(req.opName()); err != nil {
			if !f.fail(req, err) {
				return
			}
			continue
		}
		switch req.tag {
		case tagModifyDNRequest:
			if f.reply(req.id, tagModifyDNResp, resultUnwillingToPerform, "modify DN is not supported") != nil {
				return
			}
		case tagCompareRequest:
			if f.reply(req.id, tagCompareResponse, resultUnwillingToPerform, "compare is not supported") != nil {
				return
			}
		case tagAbandonRequest:
			// No reply by definition; operations here finish quickly.
		case tagExtendedRequest:
			if req.extName != startTLSOID {
				if f.reply(req.id, tagExtendedResp, resultProtocolError, "unsupported extended operation "+req.extName) != nil {
					return
				}
				continue
			}
			nr, err := f.startTLS(req.id)
			if err != nil {
				return
			}
			if nr != nil {
				r = nr
			}
		default:
			if _, err := f.backend.Write(msg); err != nil {
				return
			}
		}
	}
}

// startTLS answers a StartTLS request and, on success, upgrades the client
// connection; it returns the reader to use from then on (nil: unchanged).
func (f *frontConn) startTLS(id int64) (*bufio.Reader, error) {
	switch {
	case f.s.cfg.TLS == nil:
		return nil, f.reply(id, tagExtendedResp, resultProtocolError, "StartTLS is not configured")
	case f.isTLS:
		return nil, f.reply(id, tagExtendedResp, resultOperationsError, "TLS already established")
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if _, err := f.out.Write(result(id, tagExtendedResp, resultSuccess, "", startTLSOID)); err != nil {
		return nil, err
	}
	if err := f.out.Flush(); err != nil {
		return nil, err
	}
	tc := tls.Server(f.client, f.s.cfg.TLS)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("starttls handshake: %w", err)
	}
	f.client, f.out, f.isTLS = tc, bufio.NewWriter(tc), true
	return bufio.NewReader(tc), nil
}

// fail answers a request that a fault failed with err and reports whether
// the connection goes on. An error wrapping ErrDrop drops it, as does any
// error on an unbind (which closes the connection anyway). Any other error
// is the request's result: 80 other, with err as the diagnostic message
// (an abandon, which has no response, is just not performed).
func (f *frontConn) fail(req request, err error) bool {
	if errors.Is(err, ErrDrop) {
		return false
	}
	switch req.tag {
	case tagUnbindRequest:
		return false
	case tagAbandonRequest:
		return true
	}
	tag, ok := responseTags[req.tag]
	if !ok {
		return false
	}
	return f.reply(req.id, tag, resultOther, err.Error()) == nil
}

func (f *frontConn) reply(id int64, tag, code int, diag string) error {
	return f.write(result(id, tag, code, diag, ""), true)
}

// result encodes an LDAPMessage carrying an LDAPResult with the given
// protocolOp tag; responseName is added for extended responses.
func result(id int64, tag, code int, diag, responseName string) []byte {
	msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAPMessage")
	msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "messageID"))
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ber.Tag(tag), nil, "response")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), "resultCode"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matchedDN"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, "diagnosticMessage"))
	if responseName != "" {
		op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 10, responseName, "responseName"))
	}
	msg.AppendChild(op)
	return msg.Bytes()
}

// request is what the front needs to know about a client message.
type request struct {
	id      int64
	tag     int
	extName string
}

func (r request) opName() string {
	switch r.tag {
	case tagBindRequest:
		return "bind"
	case tagUnbindRequest:
		return "unbind"
	case tagSearchRequest:
		return "search"
	case tagModifyRequest:
		return "modify"
	case tagAddRequest:
		return "add"
	case tagDelRequest:
		return "delete"
	case tagModifyDNRequest:
		return "modifydn"
	case tagCompareRequest:
		return "compare"
	case tagAbandonRequest:
		return "abandon"
	case tagExtendedRequest:
		if r.extName == startTLSOID {
			return "starttls"
		}
		return "extended"
	}
	return "unknown"
}

var errMalformed = errors.New("malformed LDAP message")

// classify reads the message ID, the protocolOp tag and, for extended
// requests, the request name from a raw LDAPMessage.
func classify(msg []byte) (request, error) {
	tag, body, _, err := splitTLV(msg)
	if err != nil || tag != 0x30 {
		return request{}, errMalformed
	}
	tag, idBytes, rest, err := splitTLV(body)
	if err != nil || tag != 0x02 || len(idBytes) == 0 || len(idBytes) > 4 {
		return request{}, errMalformed
	}
	var id int64
	for _, b := range idBytes {
		id = id<<8 | int64(b)
	}
	tag, opBody, _, err := splitTLV(rest)
	if err != nil || tag&0xc0 != 0x40 || tag&0x1f == 0x1f {
		return request{}, errMalformed
	}
	req := request{id: id, tag: int(tag & 0x1f)}
	if req.tag == tagExtendedRequest {
		t, name, _, err := splitTLV(opBody)
		if err != nil || t != 0x80 {
			return request{}, errMalformed
		}
		req.extName = string(name)
	}
	return req, nil
}

// splitTLV splits the first BER element (single-byte tag, definite length)
// off b.
func splitTLV(b []byte) (tag byte, content, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, errMalformed
	}
	tag = b[0]
	n, hdr := int(b[1]), 2
	if n >= 0x80 {
		k := n & 0x7f
		if k == 0 || k > 4 || len(b) < 2+k {
			return 0, nil, nil, errMalformed
		}
		n = 0
		for _, c := range b[2 : 2+k] {
			n = n<<8 | int(c)
		}
		hdr += k
	}
	if n < 0 || len(b)-hdr < n {
		return 0, nil, nil, errMalformed
	}
	return tag, b[hdr : hdr+n], b[hdr+n:], nil
}

// readMessage reads one whole LDAPMessage (a BER SEQUENCE with a definite
// length) and returns its bytes unchanged.
func readMessage(r *bufio.Reader) ([]byte, error) {
	hdr := make([]byte, 2, 6)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	if hdr[0] != 0x30 {
		return nil, errMalformed
	}
	n := int(hdr[1])
	if n >= 0x80 {
		k := n & 0x7f
		if k == 0 || k > 4 {
			return nil, errMalformed
		}
		ext := make([]byte, k)
		if _, err := io.ReadFull(r, ext); err != nil {
			return nil, err
		}
		hdr = append(hdr, ext...)
		n = 0
		for _, c := range ext {
			n = n<<8 | int(c)
		}
	}
	if n < 0 || n > maxMessage {
		return nil, errMalformed
	}
	msg := make([]byte, len(hdr)+n)
	copy(msg, hdr)
	if _, err := io.ReadFull(r, msg[len(hdr):]); err != nil {
		return nil, err
	}
	return msg, nil
}
