package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"
)

// HashVersion1 is the first (and current) hash-chain format.
//
// An entry's hash is the lower-case hex SHA-256 of the following bytes:
//
//	"trialhub.audit.v1" then, for each field below in this order, its length in
//	bytes as an 8-byte big-endian unsigned integer followed by its UTF-8 bytes.
//
// Fields, each as text: hash_version ("1"), previous_hash (lower-case hex; 64 "0"s
// for sequence 1), sequence (decimal), event_id, occurred_at (UTC, RFC 3339 with
// exactly six fraction digits: 2006-01-02T15:04:05.000000Z), actor_id, actor_role,
// actor_kind, action, record_type, record_id, subject_uuid, field,
// old_value_digest, new_value_digest, values_redacted ("true" or "false"), reason,
// trial_id, site_id, client_address, client_user_agent, client_app_version,
// procedure, trace_id, request_id.
//
// A value digest is the lower-case hex HMAC-SHA256 of the value under the log's
// value key (WithValueKey; empty by default). The values enter the chain only
// through their digests, so replacing a value by Redacted later keeps the chain
// intact, while Verify still checks every value that is not Redacted against its
// digest. Every column of audit_events except the values themselves is hashed.
const HashVersion1 = 1

// genesis is the previous hash of the first entry.
var genesis = strings.Repeat("0", 64)

// occurredLayout is how occurred_at enters the hash.
const occurredLayout = "2006-01-02T15:04:05.000000Z"

type row struct {
	Entry
	oldDigest, newDigest string
}

// computeHash returns the hash of r in format r.HashVersion, or false when the
// format is unknown.
func computeHash(r *row) (string, bool) {
	if r.HashVersion != HashVersion1 {
		return "", false
	}
	h := sha256.New()
	h.Write([]byte("trialhub.audit.v1"))
	for _, f := range []string{
		strconv.Itoa(r.HashVersion), r.PreviousHash, strconv.FormatInt(r.Sequence, 10), r.ID,
		r.OccurredAt.UTC().Format(occurredLayout),
		r.Actor.ID, r.Actor.Role, string(r.Actor.Kind), r.Action, r.RecordType, r.RecordID,
		r.SubjectUUID, r.Field, r.oldDigest, r.newDigest, strconv.FormatBool(r.ValuesRedacted),
		r.Reason, r.TrialID, r.SiteID, r.Client.Address, r.Client.UserAgent, r.Client.AppVersion,
		r.Procedure, r.TraceID, r.RequestID,
	} {
		writeField(h, f)
	}
	return hex.EncodeToString(h.Sum(nil)), true
}

func writeField(h hash.Hash, f string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(f)))
	h.Write(n[:])
	h.Write([]byte(f))
}

// digest is the keyed digest of a value.
func (l *Log) digest(value string) string {
	m := hmac.New(sha256.New, l.valueKey)
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}
