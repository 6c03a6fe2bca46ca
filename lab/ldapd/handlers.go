package ldapd

import (
	"crypto/rand"
	"errors"
	"strings"
	"sync"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/jimlambrt/gldap"

	"runbook/lab/vmdir"
)

// handlers implements the gldap routes over a directory and keeps the
// per-connection state: who is bound and the open paged searches.
type handlers struct {
	dir *vmdir.Directory

	mu    sync.Mutex
	bound map[int]string                    // connection ID → bind DN
	pages map[int]map[string][]*vmdir.Entry // connection ID → cookie → rest
}

func newHandlers(dir *vmdir.Directory) *handlers {
	return &handlers{dir: dir, bound: map[int]string{}, pages: map[int]map[string][]*vmdir.Entry{}}
}

func (h *handlers) mux() *gldap.Mux {
	m, _ := gldap.NewMux() // NewMux never fails
	_ = m.Bind(h.bind)
	_ = m.Search(h.search)
	_ = m.Add(h.add)
	_ = m.Modify(h.modify)
	_ = m.Delete(h.delete)
	_ = m.DefaultRoute(h.unsupported)
	return m
}

// connClosed forgets the state of a closed connection.
func (h *handlers) connClosed(id int) {
	h.mu.Lock()
	delete(h.bound, id)
	delete(h.pages, id)
	h.mu.Unlock()
}

func (h *handlers) isBound(id int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.bound[id]
	return ok
}

// resultOf maps an error to an LDAP result code and diagnostic message.
func resultOf(err error) (int, string) {
	if err == nil {
		return gldap.ResultSuccess, ""
	}
	var ve *vmdir.Error
	if errors.As(err, &ve) {
		return ve.Code, ve.Message
	}
	return vmdir.CodeOther, err.Error()
}

const notBound = "Not bind/authenticate yet"

func (h *handlers) bind(w *gldap.ResponseWriter, r *gldap.Request) {
	m, err := r.GetSimpleBindMessage()
	if err != nil {
		_ = w.Write(r.NewBindResponse(gldap.WithResponseCode(gldap.ResultProtocolError), gldap.WithDiagnosticMessage(err.Error())))
		return
	}
	err = h.dir.Bind(m.UserName, string(m.Password))
	h.mu.Lock()
	if err == nil && m.UserName != "" {
		h.bound[r.ConnectionID()] = m.UserName
	} else {
		delete(h.bound, r.ConnectionID()) // a failed bind leaves the connection anonymous
	}
	h.mu.Unlock()
	code, msg := resultOf(err)
	_ = w.Write(r.NewBindResponse(gldap.WithResponseCode(code), gldap.WithDiagnosticMessage(msg)))
}

func (h *handlers) search(w *gldap.ResponseWriter, r *gldap.Request) {
	m, err := r.GetSearchMessage()
	if err != nil {
		_ = w.Write(r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultProtocolError), gldap.WithDiagnosticMessage(err.Error())))
		return
	}
	rootDSE := m.BaseDN == "" && m.Scope == gldap.BaseObject
	if !rootDSE && !h.isBound(r.ConnectionID()) {
		_ = w.Write(r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultInsufficientAccessRights), gldap.WithDiagnosticMessage(notBound)))
		return
	}
	var paging *gldap.ControlPaging
	for _, c := range m.Controls {
		if p, ok := c.(*gldap.ControlPaging); ok {
			paging = p
		}
	}
	var entries []*vmdir.Entry
	if paging != nil && len(paging.Cookie) > 0 {
		var ok bool
		if entries, ok = h.takePage(r.ConnectionID(), string(paging.Cookie)); !ok {
			_ = w.Write(r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultUnwillingToPerform), gldap.WithDiagnosticMessage("paged results cookie is invalid")))
			return
		}
	} else {
		entries, err = h.dir.Search(m.BaseDN, vmdir.Scope(m.Scope), m.Filter, m.Attributes)
		if err != nil {
			code, msg := resultOf(err)
			_ = w.Write(r.NewSearchDoneResponse(gldap.WithResponseCode(code), gldap.WithDiagnosticMessage(msg)))
			return
		}
	}

	code := gldap.ResultSuccess
	var done *gldap.SearchResponseDone
	switch {
	case paging != nil:
		var cookie []byte
		if paging.PagingSize == 0 { // the client abandons the paged search
			entries = nil
		} else if len(entries) > int(paging.PagingSize) {
			cookie = h.putPage(r.ConnectionID(), entries[paging.PagingSize:])
			entries = entries[:paging.PagingSize]
		}
		defer func() {
			done.SetControls(&gldap.ControlPaging{Cookie: cookie})
			_ = w.Write(done)
		}()
	case m.SizeLimit > 0 && int64(len(entries)) > m.SizeLimit:
		entries = entries[:m.SizeLimit]
		code = gldap.ResultSizeLimitExceeded
	}
	for _, e := range entries {
		resp := r.NewSearchResponseEntry(e.DN)
		for _, a := range e.Attrs {
			vals := make([]string, 0, len(a.Values))
			if !m.TypesOnly {
				for _, v := range a.Values {
					vals = append(vals, string(v))
				}
			}
			resp.AddAttribute(a.Name, vals)
		}
		if err := w.Write(resp); err != nil {
			return
		}
	}
	done = r.NewSearchDoneResponse(gldap.WithResponseCode(code))
	if paging == nil {
		_ = w.Write(done)
	}
}

// putPage stores the rest of a paged search and returns its cookie.
func (h *handlers) putPage(conn int, rest []*vmdir.Entry) []byte {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pages[conn] == nil {
		h.pages[conn] = map[string][]*vmdir.Entry{}
	}
	h.pages[conn][string(b)] = rest
	return b
}

func (h *handlers) takePage(conn int, cookie string) ([]*vmdir.Entry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rest, ok := h.pages[conn][cookie]
	delete(h.pages[conn], cookie)
	return rest, ok
}

func (h *handlers) add(w *gldap.ResponseWriter, r *gldap.Request) {
	reply := func(code int, msg string) {
		_ = w.Write(r.NewResponse(gldap.WithApplicationCode(gldap.ApplicationAddResponse),
			gldap.WithResponseCode(code), gldap.WithDiagnosticMessage(msg)))
	}
	m, err := r.GetAddMessage()
	if err != nil {
		reply(gldap.ResultProtocolError, err.Error())
		return
	}
	if !h.isBound(r.ConnectionID()) {
		reply(gldap.ResultInsufficientAccessRights, notBound)
		return
	}
	e := &vmdir.Entry{DN: m.DN}
	for _, a := range m.Attributes {
		attr := vmdir.Attr{Name: a.Type}
		for _, v := range a.Vals {
			attr.Values = append(attr.Values, []byte(v))
		}
		e.Attrs = append(e.Attrs, attr)
	}
	reply(resultOf(h.dir.Add(e)))
}

func (h *handlers) modify(w *gldap.ResponseWriter, r *gldap.Request) {
	reply := func(code int, msg string) {
		_ = w.Write(r.NewModifyResponse(gldap.WithResponseCode(code), gldap.WithDiagnosticMessage(msg)))
	}
	m, err := r.GetModifyMessage()
	if err != nil {
		reply(gldap.ResultProtocolError, err.Error())
		return
	}
	if !h.isBound(r.ConnectionID()) {
		reply(gldap.ResultInsufficientAccessRights, notBound)
		return
	}
	changes := make([]vmdir.Change, 0, len(m.Changes))
	for _, c := range m.Changes {
		if c.Operation < gldap.AddAttribute || c.Operation > gldap.ReplaceAttribute {
			reply(gldap.ResultUnwillingToPerform, "modify/increment is not supported")
			return
		}
		attr := vmdir.Attr{Name: c.Modification.Type}
		for _, raw := range c.Modification.Vals {
			attr.Values = append(attr.Values, modifyValues(raw)...)
		}
		changes = append(changes, vmdir.Change{Op: vmdir.ModOp(c.Operation), Attr: attr})
	}
	reply(resultOf(h.dir.Modify(m.DN, changes)))
}

// modifyValues works around gldap v0.1.14 handing over a modification's
// values still BER-encoded: one string holding the concatenated OCTET
// STRING elements of the value SET ("" for an empty set). If raw does not
// parse as such a sequence it is taken as a plain value.
func modifyValues(raw string) [][]byte {
	b := []byte(raw)
	var vals [][]byte
	for len(b) > 0 {
		p, err := ber.DecodePacketErr(b)
		if err != nil || p.ClassType != ber.ClassUniversal || p.TagType != ber.TypePrimitive || p.Tag != ber.TagOctetString {
			return [][]byte{[]byte(raw)}
		}
		n := len(p.Bytes())
		if n > len(b) {
			return [][]byte{[]byte(raw)}
		}
		vals = append(vals, p.Data.Bytes())
		b = b[n:]
	}
	return vals
}

func (h *handlers) delete(w *gldap.ResponseWriter, r *gldap.Request) {
	reply := func(code int, msg string) {
		_ = w.Write(r.NewResponse(gldap.WithApplicationCode(gldap.ApplicationDelResponse),
			gldap.WithResponseCode(code), gldap.WithDiagnosticMessage(msg)))
	}
	m, err := r.GetDeleteMessage()
	if err != nil {
		reply(gldap.ResultProtocolError, err.Error())
		return
	}
	if !h.isBound(r.ConnectionID()) {
		reply(gldap.ResultInsufficientAccessRights, notBound)
		return
	}
	reply(resultOf(h.dir.Delete(strings.TrimSpace(m.DN))))
}

// unsupported answers requests no route handles (the front intercepts the
// known ones first).
func (h *handlers) unsupported(w *gldap.ResponseWriter, r *gldap.Request) {
	_ = w.Write(r.NewResponse(gldap.WithResponseCode(gldap.ResultUnwillingToPerform),
		gldap.WithDiagnosticMessage("operation not supported")))
}
