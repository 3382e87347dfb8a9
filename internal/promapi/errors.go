package promapi

// ErrorType classifies a failed query, with the API's own errorType
// values and client_golang's names for the failures that carry none.
type ErrorType string

// The types of a failed query. The first five are the API's; the rest say
// that no answer from the API was read.
const (
	ErrBadData     ErrorType = "bad_data"
	ErrTimeout     ErrorType = "timeout"
	ErrCanceled    ErrorType = "canceled"
	ErrExecution   ErrorType = "execution"
	ErrUnavailable ErrorType = "unavailable"
	// ErrClient is a 4xx status other than the API's own errors.
	ErrClient ErrorType = "client_error"
	// ErrServer is a 5xx status.
	ErrServer ErrorType = "server_error"
	// ErrBadResponse is an answer that could not be read as the API's.
	ErrBadResponse ErrorType = "bad_response"
)

// Error is a query that the API, or the server in front of it, refused.
type Error struct {
	Type ErrorType
	Msg  string
}

func (e *Error) Error() string { return string(e.Type) + ": " + e.Msg }
