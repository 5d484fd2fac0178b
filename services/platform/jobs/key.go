package jobs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// MetadataKey is the field of a job's metadata that holds its idempotency key.
const MetadataKey = "idempotency_key"

// Key is the idempotency key a worker sends to the service its job calls
// (idempotency_key of the request): a random UUID that the Queue writes into the
// job's metadata when the job is inserted, by any path (InsertTx, Insert,
// InsertMany, periodic jobs). It is the same on every attempt and after a rescue,
// since they work the same row, and different for every job, also across
// services, databases and a database that was reset (unlike the job's id, which a
// fresh database hands out again and which is only unique within one database).
// A caller that wants a key of its own (say, derived from the client's request
// key) sets it in InsertOpts.Metadata under MetadataKey; the Queue keeps it.
//
// For a job inserted by another River client, without the field, Key falls back
// to "river:<kind>:<id>", stable but unique only within this database.
func Key(job *rivertype.JobRow) string {
	var md map[string]any
	if json.Unmarshal(job.Metadata, &md) == nil {
		if k, ok := md[MetadataKey].(string); ok && k != "" {
			return k
		}
	}
	return fmt.Sprintf("river:%s:%d", job.Kind, job.ID)
}

// keyHook gives every job inserted through the Queue its idempotency key.
type keyHook struct{ river.HookDefaults }

// InsertBegin sets MetadataKey in params.Metadata unless it is already set.
func (*keyHook) InsertBegin(_ context.Context, params *rivertype.JobInsertParams) error {
	md := map[string]json.RawMessage{}
	if len(params.Metadata) > 0 {
		if err := json.Unmarshal(params.Metadata, &md); err != nil {
			return fmt.Errorf("jobs: metadata of %s is not a JSON object: %w", params.Kind, err)
		}
	}
	if _, ok := md[MetadataKey]; ok {
		return nil
	}
	k, _ := json.Marshal(uuid.NewString())
	md[MetadataKey] = k
	b, err := json.Marshal(md)
	if err != nil {
		return fmt.Errorf("jobs: metadata of %s: %w", params.Kind, err)
	}
	params.Metadata = b
	return nil
}

// IsPlugin marks keyHook as a River plugin (river.Config.Plugins).
func (*keyHook) IsPlugin() bool { return true }
