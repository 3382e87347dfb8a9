package v1

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
)

// DefaultLimit is how many items a list answers with when the request
// sets no limit: a page that stays small however large the fleet.
const DefaultLimit = 100

// Query parameters of every paginated list.
var pageParams = []param{
	{name: "limit", description: "the most items to answer with (default " + strconv.Itoa(DefaultLimit) + "); 0 answers with every item"},
	{name: "page_token", description: "the next_page_token of the previous page: the items after it (a token is good until the next cycle; after it, a page may skip or repeat items that came or went)"},
}

// tokenPrefix versions the page tokens, so that a client cannot mistake a
// token of one list for an offset it could compute.
const tokenPrefix = "o"

// page cuts items to the page the request's limit and page_token ask for,
// and returns the token of the next page, empty on the last.
func page[T any](items []T, q url.Values) ([]T, string, *apiError) {
	limit := DefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, "", badData("limit", "%q is not a whole number of items, 0 or more", v)
		}
		limit = n
	}
	offset := 0
	if v := q.Get("page_token"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		n, convErr := strconv.Atoi(strings.TrimPrefix(string(b), tokenPrefix))
		if err != nil || convErr != nil || !strings.HasPrefix(string(b), tokenPrefix) || n < 0 {
			return nil, "", badData("page_token", "%q is not a token this API gave as next_page_token", v)
		}
		offset = n
	}
	if offset > len(items) {
		offset = len(items)
	}
	end := len(items)
	if limit > 0 && offset+limit < end {
		end = offset + limit
	}
	next := ""
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte(tokenPrefix + strconv.Itoa(end)))
	}
	return items[offset:end], next, nil
}
