package vmdir

import (
	"errors"
	"fmt"
)

// LDAP result codes returned in Error.Code (RFC 4511 §4.1.9).
const (
	CodeSuccess                = 0
	CodeOperationsError        = 1
	CodeProtocolError          = 2
	CodeSizeLimitExceeded      = 4
	CodeNoSuchAttribute        = 16
	CodeUndefinedAttributeType = 17
	CodeConstraintViolation    = 19
	CodeAttributeOrValueExists = 20
	CodeInvalidAttributeSyntax = 21
	CodeNoSuchObject           = 32
	CodeInvalidDNSyntax        = 34
	CodeInvalidCredentials     = 49
	CodeInsufficientAccess     = 50
	CodeUnavailable            = 52
	CodeUnwillingToPerform     = 53
	CodeNamingViolation        = 64
	CodeObjectClassViolation   = 65
	CodeNotAllowedOnNonLeaf    = 66
	CodeNotAllowedOnRDN        = 67
	CodeEntryAlreadyExists     = 68
	CodeOther                  = 80
	CodeFilterError            = 87
)

// Error is an LDAP result other than success: Code is the LDAP result code
// (32 noSuchObject, 65 objectClassViolation, 68 entryAlreadyExists, …) and
// Message the diagnostic message a server would send with it.
type Error struct {
	Code    int
	Message string
}

// Error formats the error as "ldap result <code> (<name>): <message>".
func (e *Error) Error() string {
	name := codeNames[e.Code]
	if name == "" {
		name = "unknown"
	}
	if e.Message == "" {
		return fmt.Sprintf("ldap result %d (%s)", e.Code, name)
	}
	return fmt.Sprintf("ldap result %d (%s): %s", e.Code, name, e.Message)
}

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, &vmdir.Error{Code: vmdir.CodeNoSuchObject}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Code returns the LDAP result code carried by err: 0 for nil, the Code of
// the first *Error in err's chain, and CodeOther for any other error.
func Code(err error) int {
	if err == nil {
		return CodeSuccess
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeOther
}

func errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

var codeNames = map[int]string{
	CodeSuccess:                "success",
	CodeOperationsError:        "operationsError",
	CodeProtocolError:          "protocolError",
	CodeSizeLimitExceeded:      "sizeLimitExceeded",
	CodeNoSuchAttribute:        "noSuchAttribute",
	CodeUndefinedAttributeType: "undefinedAttributeType",
	CodeConstraintViolation:    "constraintViolation",
	CodeAttributeOrValueExists: "attributeOrValueExists",
	CodeInvalidAttributeSyntax: "invalidAttributeSyntax",
	CodeNoSuchObject:           "noSuchObject",
	CodeInvalidDNSyntax:        "invalidDNSyntax",
	CodeInvalidCredentials:     "invalidCredentials",
	CodeInsufficientAccess:     "insufficientAccessRights",
	CodeUnavailable:            "unavailable",
	CodeUnwillingToPerform:     "unwillingToPerform",
	CodeNamingViolation:        "namingViolation",
	CodeObjectClassViolation:   "objectClassViolation",
	CodeNotAllowedOnNonLeaf:    "notAllowedOnNonLeaf",
	CodeNotAllowedOnRDN:        "notAllowedOnRDN",
	CodeEntryAlreadyExists:     "entryAlreadyExists",
	CodeOther:                  "other",
	CodeFilterError:            "filterError",
}
