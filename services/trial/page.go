package trial

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// A page token is the position after the last item of a page (its sort key
// and id) and a digest of the filters it was made for, so a token used with
// other filters is refused instead of silently skipping rows.
type cursor struct {
	Filters string `json:"f"`
	Key     string `json:"k"`
	ID      string `json:"i"`
}

// filtersOf digests req without its page_token and page_size.
func filtersOf(req proto.Message) string {
	m := proto.Clone(req)
	r := m.ProtoReflect()
	for _, name := range []protoreflect.Name{"page_token", "page_size"} {
		if fd := r.Descriptor().Fields().ByName(name); fd != nil {
			r.Clear(fd)
		}
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// readCursor decodes token for req; an empty token is the first page.
func readCursor(req proto.Message, token string) (cursor, error) {
	if token == "" {
		return cursor{}, nil
	}
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || json.Unmarshal(b, &c) != nil || c.Filters != filtersOf(req) {
		return cursor{}, invalid("page_token", "not a token of this query")
	}
	return c, nil
}

func writeCursor(req proto.Message, key, id string) string {
	b, _ := json.Marshal(cursor{Filters: filtersOf(req), Key: key, ID: id})
	return base64.RawURLEncoding.EncodeToString(b)
}

func pageSize(n int32, def int) int {
	if n <= 0 {
		return def
	}
	return int(n)
}
