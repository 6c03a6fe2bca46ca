package vmdir

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// syntax is the value syntax of an attribute type; it decides how values are
// validated and matched.
type syntax int

const (
	// synString is a directory string: UTF-8, matched case-insensitively
	// with insignificant spaces removed (caseIgnoreMatch).
	synString syntax = iota
	// synBinary is an octet string, matched byte for byte.
	synBinary
	// synInteger is a decimal integer, matched numerically.
	synInteger
	// synDN is a distinguished name, matched by normalized form.
	synDN
)

func (s syntax) String() string {
	switch s {
	case synBinary:
		return "octet string"
	case synInteger:
		return "integer"
	case synDN:
		return "distinguished name"
	default:
		return "directory string"
	}
}

// attrType describes one attribute type of the schema.
type attrType struct {
	name   string // canonical spelling, used in results
	syntax syntax
	single bool // SINGLE-VALUE
	// operational attributes are maintained by the server: clients cannot
	// write them and they are returned only when asked for ("+" or by name).
	operational bool
}

// objectClass describes one object class of the schema.
type objectClass struct {
	name string
	kind classKind
	must []string
	may  []string
}

type classKind int

const (
	structural classKind = iota
	auxiliary
	abstract
)

// Attribute types. The names and syntaxes follow vmdir's schema
// (lightwave vmdirschema.ldif): certificates and keys are octet strings (no
// ";binary"), vmwLKUPEndpointSslTrust is a directory string holding the
// base64 DER body, USN attributes are integers.
var attrTypes = []attrType{
	{name: "objectClass"},
	{name: "cn"},
	{name: "dc", single: true},
	{name: "ou"},
	{name: "description"},
	{name: "displayName", single: true},
	{name: "name", single: true},
	{name: "userPassword", syntax: synBinary},
	{name: "userPrincipalName", single: true},
	{name: "sAMAccountName", single: true},
	{name: "givenName", single: true},
	{name: "sn", single: true},
	{name: "mail"},
	{name: "member", syntax: synDN},
	{name: "groupType", syntax: synInteger, single: true},
	{name: "dNSHostName", single: true},
	{name: "servicePrincipalName"},
	{name: "labeledURI"},

	// Certificates and keys.
	{name: "userCertificate", syntax: synBinary},
	{name: "cACertificate", syntax: synBinary},
	{name: "certificateRevocationList", syntax: synBinary},
	{name: "cACertificateDN", single: true},
	{name: "vmwSTSSubjectDN", single: true},
	{name: "vmwSTSPrivateKey", syntax: synBinary, single: true},

	// STS tenant.
	{name: "vmwSTSGuidIdentity", single: true},
	{name: "vmwSTSIssuerName", single: true},
	{name: "vmwSTSDefaultIdentityProvider", single: true},
	{name: "vmwSTSLogonBanner", single: true},
	{name: "vmwSTSLogonBannerTitle", single: true},
	{name: "vmwSTSAuthnTypes", syntax: synInteger},
	{name: "vmwSTSClockTolerance", syntax: synInteger, single: true},
	{name: "vmwSTSDelegationCount", syntax: synInteger, single: true},
	{name: "vmwSTSRenewCount", syntax: synInteger, single: true},
	{name: "vmwSTSMaximumBearerTokenLifetime", syntax: synInteger, single: true},
	{name: "vmwSTSMaximumHoKTokenLifetime", syntax: synInteger, single: true},
	{name: "vmwSTSSignatureAlgorithmKeySize", syntax: synInteger},
	{name: "vmwSTSConnectionStrings"},

	// Lookup Service registrations (6.x and legacy 5.5).
	{name: "vmwLKUPVersion", single: true},
	{name: "vmwLKUPProduct", single: true},
	{name: "vmwLKUPType", single: true},
	{name: "vmwLKUPOwnerId", single: true},
	{name: "vmwLKUPSiteId", single: true},
	{name: "vmwLKUPDeploymentNodeId", single: true},
	{name: "vmwLKUPFriendlyNameDefault", single: true},
	{name: "vmwLKUPFriendlyNameResourceKey", single: true},
	{name: "vmwLKUPDescriptionDefault", single: true},
	{name: "vmwLKUPDescriptionResourceKey", single: true},
	{name: "vmwLKUPVendorNameDefault", single: true},
	{name: "vmwLKUPVendorNameResourceKey", single: true},
	{name: "vmwLKUPVendorProductInfoDefault", single: true},
	{name: "vmwLKUPVendorProductInfoResourceKey", single: true},
	{name: "vmwLKUPLegacyIds"},
	{name: "vmwLKUPEndpointType", single: true},
	{name: "vmwLKUPEndpointProtocol", single: true},
	{name: "vmwLKUPURI", single: true},
	{name: "vmwLKUPEndpointSslTrust"},
	{name: "vmwLKUPLegacyId", single: true},
	{name: "vmwLKUPPropertyName", single: true},
	{name: "vmwLKUPPropertyValue"},
	{name: "vmwLKUPServiceType", single: true},
	{name: "vmwLKUPDescription", single: true},
	{name: "vmwLKUPProtocol", single: true},
	{name: "vmwLKUPSslTrustAnchor", syntax: synBinary},

	// Servers and replication.
	{name: "serverId", syntax: synInteger, single: true},
	{name: "replInterval", syntax: synInteger, single: true},
	{name: "replPageSize", syntax: synInteger, single: true},
	{name: "invocationId", syntax: synBinary, single: true},
	{name: "upToDateVector", single: true},
	{name: "lastLocalUsnProcessed", syntax: synInteger, single: true},
	{name: "vmwDomainFunctionalLevel", syntax: synInteger, single: true},

	// Maintained by the server.
	{name: "uSNCreated", syntax: synInteger, single: true, operational: true},
	{name: "uSNChanged", syntax: synInteger, single: true, operational: true},
	{name: "highestCommittedUSN", syntax: synInteger, single: true, operational: true},
}

var userAttrs = []string{"userPassword", "userPrincipalName", "sAMAccountName", "givenName",
	"sn", "mail", "description", "displayName", "userCertificate"}

// Object classes. top is abstract and requires objectClass; every entry
// needs at least one structural class. Naming attributes (cn, ou, dc,
// labeledURI) are part of MUST so that an entry can carry its RDN.
var objectClasses = []objectClass{
	{name: "top", kind: abstract, must: []string{"objectClass"}},
	{name: "container", must: []string{"cn"}, may: []string{"description"}},
	{name: "domainDNS", must: []string{"dc"}, may: []string{"description", "vmwDomainFunctionalLevel"}},
	{name: "dcObject", kind: auxiliary, must: []string{"dc"}},
	{name: "organizationalUnit", must: []string{"ou"}, may: []string{"description"}},
	{name: "person", must: []string{"cn"}, may: userAttrs},
	{name: "organizationalPerson", must: []string{"cn"}, may: userAttrs},
	{name: "user", must: []string{"cn"}, may: userAttrs},
	{name: "computer", must: []string{"cn"},
		may: append([]string{"dNSHostName", "servicePrincipalName"}, userAttrs...)},
	{name: "group", must: []string{"cn"},
		may: []string{"member", "description", "groupType", "sAMAccountName"}},
	{name: "vmwServicePrincipal", kind: auxiliary, must: []string{"cn", "vmwSTSSubjectDN"},
		may: []string{"userCertificate", "description"}},
	{name: "vmwCertificationAuthority", must: []string{"cn"},
		may: []string{"cACertificate", "certificateRevocationList", "cACertificateDN", "description"}},
	{name: "vmwSTSTenant", must: []string{"cn"},
		may: []string{"vmwSTSGuidIdentity", "vmwSTSIssuerName", "vmwSTSDefaultIdentityProvider",
			"vmwSTSLogonBanner", "vmwSTSLogonBannerTitle", "vmwSTSAuthnTypes", "vmwSTSClockTolerance",
			"vmwSTSDelegationCount", "vmwSTSRenewCount", "vmwSTSMaximumBearerTokenLifetime",
			"vmwSTSMaximumHoKTokenLifetime", "vmwSTSSignatureAlgorithmKeySize",
			"vmwSTSConnectionStrings", "description"}},
	{name: "vmwSTSTenantCredential", must: []string{"cn", "vmwSTSPrivateKey", "userCertificate"}},
	{name: "vmwSTSTenantTrustedCertificateChain", must: []string{"cn", "userCertificate"}},
	{name: "vmwLKUPServiceRegistration",
		must: []string{"cn", "vmwLKUPVersion", "vmwLKUPProduct", "vmwLKUPType", "vmwLKUPOwnerId"},
		may: []string{"vmwLKUPDeploymentNodeId", "vmwLKUPSiteId", "vmwLKUPLegacyIds",
			"vmwLKUPFriendlyNameDefault", "vmwLKUPFriendlyNameResourceKey",
			"vmwLKUPDescriptionDefault", "vmwLKUPDescriptionResourceKey",
			"vmwLKUPVendorNameDefault", "vmwLKUPVendorNameResourceKey",
			"vmwLKUPVendorProductInfoDefault", "vmwLKUPVendorProductInfoResourceKey"}},
	{name: "vmwLKUPEndpointRegistration",
		must: []string{"cn", "vmwLKUPEndpointType", "vmwLKUPEndpointProtocol", "vmwLKUPURI"},
		may:  []string{"vmwLKUPEndpointSslTrust", "vmwLKUPLegacyId"}},
	{name: "vmwLKUPProperty", must: []string{"cn", "vmwLKUPPropertyName"},
		may: []string{"vmwLKUPPropertyValue"}},
	{name: "vmwLKUPService", must: []string{"cn", "vmwLKUPServiceType"},
		may: []string{"vmwLKUPVersion", "vmwLKUPOwnerId", "vmwLKUPSiteId", "vmwLKUPDescription"}},
	{name: "vmwLKUPServiceEndpoint", must: []string{"cn", "vmwLKUPURI", "vmwLKUPProtocol"},
		may: []string{"vmwLKUPSslTrustAnchor", "vmwLKUPEndpointType"}},
	{name: "vmwDirServer", must: []string{"cn", "serverId"},
		may: []string{"replInterval", "replPageSize", "invocationId", "upToDateVector", "dNSHostName"}},
	{name: "vmwReplicationAgreement", must: []string{"labeledURI"},
		may: []string{"lastLocalUsnProcessed", "upToDateVector", "invocationId", "cn", "description"}},
}

var (
	attrByLower  = map[string]*attrType{}
	classByLower = map[string]*objectClass{}
)

func init() {
	for i := range attrTypes {
		attrByLower[strings.ToLower(attrTypes[i].name)] = &attrTypes[i]
	}
	for i := range objectClasses {
		oc := &objectClasses[i]
		classByLower[strings.ToLower(oc.name)] = oc
		for _, n := range append(oc.must, oc.may...) {
			if attrByLower[strings.ToLower(n)] == nil {
				panic("vmdir schema: class " + oc.name + " uses undefined attribute " + n)
			}
		}
	}
}

// lookupAttr returns the attribute type called name (any case), or nil.
func lookupAttr(name string) *attrType {
	return attrByLower[strings.ToLower(name)]
}

// validateValue checks v against the syntax of t.
func validateValue(t *attrType, v []byte) error {
	switch t.syntax {
	case synString:
		if len(v) == 0 || !utf8.Valid(v) {
			return errorf(CodeInvalidAttributeSyntax, "%s: value is not a valid directory string", t.name)
		}
	case synInteger:
		if _, err := strconv.ParseInt(string(v), 10, 64); err != nil {
			return errorf(CodeInvalidAttributeSyntax, "%s: value %q is not an integer", t.name, v)
		}
	case synDN:
		if _, err := NormalizeDN(string(v)); err != nil || len(bytes.TrimSpace(v)) == 0 {
			return errorf(CodeInvalidAttributeSyntax, "%s: value %q is not a distinguished name", t.name, v)
		}
	}
	return nil
}

// normString is caseIgnoreMatch preparation: lower-case, leading and
// trailing spaces removed, inner runs of spaces folded to one.
func normString(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if !strings.Contains(s, "  ") {
		return s
	}
	var b strings.Builder
	prevSpace := false
	for _, r := range s {
		if r == ' ' {
			if prevSpace {
				continue
			}
			prevSpace = true
		} else {
			prevSpace = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// normValue returns the form of v used for equality under t's syntax.
func normValue(t *attrType, v []byte) string {
	switch t.syntax {
	case synBinary:
		return string(v)
	case synInteger:
		n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
		if err != nil {
			return string(v)
		}
		return strconv.FormatInt(n, 10)
	case synDN:
		if n, err := NormalizeDN(string(v)); err == nil {
			return n
		}
		return normString(string(v))
	default:
		return normString(string(v))
	}
}

// prepareEntry canonicalizes e (attribute names in schema spelling, repeated
// attributes merged) and validates names, syntaxes and duplicates. It does
// not check object class rules; see checkClasses.
func prepareEntry(e *Entry) (*Entry, error) {
	out := &Entry{DN: e.DN}
	for _, a := range e.Attrs {
		t := lookupAttr(a.Name)
		if t == nil {
			return nil, errorf(CodeUndefinedAttributeType, "%s: attribute type undefined", a.Name)
		}
		if t.operational {
			return nil, errorf(CodeUnwillingToPerform, "%s: no user modification allowed", t.name)
		}
		i := out.attrIndex(t.name)
		if i < 0 {
			out.Attrs = append(out.Attrs, Attr{Name: t.name})
			i = len(out.Attrs) - 1
		}
		for _, v := range a.Values {
			if err := validateValue(t, v); err != nil {
				return nil, err
			}
			if hasValue(t, out.Attrs[i].Values, v) {
				return nil, errorf(CodeAttributeOrValueExists, "%s: value #%d provided more than once", t.name, len(out.Attrs[i].Values))
			}
			out.Attrs[i].Values = append(out.Attrs[i].Values, bytes.Clone(v))
		}
	}
	// Drop attributes given without values (an add cannot create them).
	kept := out.Attrs[:0]
	for _, a := range out.Attrs {
		if len(a.Values) > 0 {
			kept = append(kept, a)
		}
	}
	out.Attrs = kept
	return out, nil
}

// hasValue reports whether vals holds a value equal to v under t's matching.
func hasValue(t *attrType, vals [][]byte, v []byte) bool {
	n := normValue(t, v)
	for _, x := range vals {
		if normValue(t, x) == n {
			return true
		}
	}
	return false
}

// checkEntry applies the object class rules to a prepared entry whose first
// RDN is first: known classes, one structural class, MUST present, nothing
// outside MUST ∪ MAY, SINGLE-VALUE, and the RDN values present.
func checkEntry(e *Entry, first rdn) error {
	ocs := e.Values("objectClass")
	if len(ocs) == 0 {
		return errorf(CodeObjectClassViolation, "no objectClass attribute")
	}
	allowed := map[string]bool{"objectclass": true}
	var classes []*objectClass
	hasStructural := false
	for _, v := range ocs {
		oc := classByLower[strings.ToLower(strings.TrimSpace(string(v)))]
		if oc == nil {
			return errorf(CodeObjectClassViolation, "objectClass %q not recognized", v)
		}
		classes = append(classes, oc)
		if oc.kind == structural {
			hasStructural = true
		}
		for _, n := range oc.may {
			allowed[strings.ToLower(n)] = true
		}
		for _, n := range oc.must {
			allowed[strings.ToLower(n)] = true
		}
	}
	if !hasStructural {
		return errorf(CodeObjectClassViolation, "no structural object class provided")
	}
	for _, oc := range classes {
		for _, n := range oc.must {
			if len(e.Values(n)) == 0 {
				return errorf(CodeObjectClassViolation, "object class '%s' requires attribute '%s'", oc.name, n)
			}
		}
	}
	for _, a := range e.Attrs {
		if !allowed[strings.ToLower(a.Name)] {
			return errorf(CodeObjectClassViolation, "attribute '%s' not allowed", a.Name)
		}
		if t := lookupAttr(a.Name); t.single && len(a.Values) > 1 {
			return errorf(CodeConstraintViolation, "attribute '%s' cannot have multiple values", a.Name)
		}
	}
	for _, av := range first {
		t := lookupAttr(av.typ)
		if t == nil {
			return errorf(CodeNamingViolation, "naming attribute '%s' is not defined", av.typ)
		}
		if !hasValue(t, e.Values(t.name), []byte(av.val)) {
			return errorf(CodeNotAllowedOnRDN, "naming attribute '%s' value %q is not present in entry", t.name, av.val)
		}
	}
	return nil
}
