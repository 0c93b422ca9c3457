package events

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactcenter/agentd/agent"
)

func testRecord(t *testing.T, agentID string, revision uint64) record {
	t.Helper()
	session, err := json.Marshal(agent.Session{AgentID: agentID, State: agent.StateReady, Revision: revision})
	require.NoError(t, err)
	id := fmt.Sprintf("event-%s-%d", agentID, revision)
	return record{
		AgentID: agentID,
		Type:    agent.EventLoggedIn,
		EventID: id,
		Event:   json.RawMessage(`{"id":"` + id + `"}`),
		Session: session,
	}
}

func openTestOutbox(t *testing.T, dir string, maxEntries int, maxBytes int64) (*outbox, *logBuffer) {
	t.Helper()
	log, logs := newTestLogger()
	o, err := openOutbox(dir, maxEntries, maxBytes, log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = o.close() })
	return o, logs
}

func pendingIDs(o *outbox) []string {
	var ids []string
	for _, rec := range o.records() {
		ids = append(ids, rec.EventID)
	}
	return ids
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	require.NoError(t, err)
	return info.Size()
}

func TestOutboxReopenKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	o, _ := openTestOutbox(t, dir, 100, 1<<20)
	for rev := uint64(1); rev <= 3; rev++ {
		require.NoError(t, o.append(testRecord(t, "1001", rev), false))
	}
	require.NoError(t, o.close())

	reopened, logs := openTestOutbox(t, dir, 100, 1<<20)
	assert.Equal(t, []string{"event-1001-1", "event-1001-2", "event-1001-3"}, pendingIDs(reopened))
	assert.Equal(t, uint64(4), reopened.nextSeq)
	assert.Contains(t, logs.String(), "outbox contains changes not yet stored")
}

func TestOutboxAckSkipsStoredRecords(t *testing.T) {
	dir := t.TempDir()
	o, _ := openTestOutbox(t, dir, 100, 1<<20)
	for rev := uint64(1); rev <= 3; rev++ {
		require.NoError(t, o.append(testRecord(t, "1001", rev), false))
	}
	head, ok := o.head()
	require.True(t, ok)
	require.NoError(t, o.ack(head.Seq))
	require.Error(t, o.ack(head.Seq), "ack of a record no longer pending")
	require.NoError(t, o.close())

	reopened, _ := openTestOutbox(t, dir, 100, 1<<20)
	assert.Equal(t, []string{"event-1001-2", "event-1001-3"}, pendingIDs(reopened))
	entries, _ := reopened.depth()
	assert.Equal(t, 2, entries)
}

func TestOutboxTruncatedWhenDrained(t *testing.T) {
	dir := t.TempDir()
	o, _ := openTestOutbox(t, dir, 100, 1<<20)
	o.truncateSize = 1
	require.NoError(t, o.append(testRecord(t, "1001", 1), false))
	require.NoError(t, o.append(testRecord(t, "1001", 2), false))
	require.NoError(t, o.ack(1))
	require.NoError(t, o.ack(2))
	assert.Zero(t, fileSize(t, filepath.Join(dir, outboxLogName)))

	require.NoError(t, o.append(testRecord(t, "1001", 3), false))
	head, _ := o.head()
	assert.Equal(t, uint64(3), head.Seq, "sequence numbers continue after truncation")
	require.NoError(t, o.close())

	reopened, _ := openTestOutbox(t, dir, 100, 1<<20)
	assert.Equal(t, []string{"event-1001-3"}, pendingIDs(reopened))
}

func TestOutboxSmallDrainedFileKept(t *testing.T) {
	dir := t.TempDir()
	o, _ := openTestOutbox(t, dir, 100, 1<<20)
	require.NoError(t, o.append(testRecord(t, "1001", 1), false))
	require.NoError(t, o.ack(1))
	size := fileSize(t, filepath.Join(dir, outboxLogName))
	assert.Positive(t, size, "a drained file below truncateSize is kept")

	require.NoError(t, o.append(testRecord(t, "1001", 2), false))
	require.NoError(t, o.close())

	reopened, _ := openTestOutbox(t, dir, 100, 1<<20)
	assert.Equal(t, []string{"event-1001-2"}, pendingIDs(reopened), "the stored record is skipped")
}

func TestOutboxDrainedFileTruncatedAtSize(t *testing.T) {
	dir := t.TempDir()
	o, _ := openTestOutbox(t, dir, 100, 1<<20)
	require.NoError(t, o.append(testRecord(t, "1001", 1), false))
	o.truncateSize = fileSize(t, filepath.Join(dir, outboxLogName)) + 1
	require.NoError(t, o.append(testRecord(t, "1001", 2), false))
	require.NoError(t, o.ack(1))
	require.NoError(t, o.ack(2))

	assert.Zero(t, fileSize(t, filepath.Join(dir, outboxLogName)))
}

func TestOutboxTornTailDiscarded(t *testing.T) {
	tests := []struct {
		name string
		tear func(t *testing.T, path string, size int64)
		keep []string
	}{
		{
			name: "partial header",
			tear: func(t *testing.T, path string, _ int64) { appendBytes(t, path, []byte{0, 0, 1}) },
			keep: []string{"event-1001-1", "event-1001-2", "event-1001-3"},
		},
		{
			name: "partial payload",
			tear: func(t *testing.T, path string, _ int64) {
				header := make([]byte, recordHeaderSize)
				binary.BigEndian.PutUint32(header, 200)
				appendBytes(t, path, append(header, []byte(`{"seq":4,"agent`)...))
			},
			keep: []string{"event-1001-1", "event-1001-2", "event-1001-3"},
		},
		{
			name: "last record cut short",
			tear: func(t *testing.T, path string, size int64) { require.NoError(t, os.Truncate(path, size-5)) },
			keep: []string{"event-1001-1", "event-1001-2"},
		},
		{
			name: "last record checksum",
			tear: func(t *testing.T, path string, size int64) { flipByte(t, path, size-2) },
			keep: []string{"event-1001-1", "event-1001-2"},
		},
		{
			name: "zero length",
			tear: func(t *testing.T, path string, _ int64) { appendBytes(t, path, make([]byte, 64)) },
			keep: []string{"event-1001-1", "event-1001-2", "event-1001-3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			o, _ := openTestOutbox(t, dir, 100, 1<<20)
			for rev := uint64(1); rev <= 3; rev++ {
				require.NoError(t, o.append(testRecord(t, "1001", rev), false))
			}
			size := o.size
			require.NoError(t, o.close())
			path := filepath.Join(dir, outboxLogName)
			tt.tear(t, path, size)

			reopened, logs := openTestOutbox(t, dir, 100, 1<<20)
			assert.Equal(t, tt.keep, pendingIDs(reopened))
			assert.Contains(t, logs.String(), "discarding torn or corrupt outbox tail")
			assert.Equal(t, reopened.size, fileSize(t, path), "file cut after the last whole record")

			require.NoError(t, reopened.append(testRecord(t, "1001", 9), false))
			require.NoError(t, reopened.close())
			again, _ := openTestOutbox(t, dir, 100, 1<<20)
			assert.Equal(t, append(tt.keep, "event-1001-9"), pendingIDs(again))
		})
	}
}

func TestOutboxFullByEntries(t *testing.T) {
	o, _ := openTestOutbox(t, t.TempDir(), 2, 1<<20)
	require.NoError(t, o.append(testRecord(t, "1001", 1), false))
	require.NoError(t, o.append(testRecord(t, "1001", 2), false))
	err := o.append(testRecord(t, "1001", 3), false)
	require.ErrorIs(t, err, ErrOutboxFull)
	assert.Contains(t, err.Error(), "2 changes wait")

	require.NoError(t, o.ack(1))
	require.NoError(t, o.append(testRecord(t, "1001", 3), false), "room again after a record was stored")
}

func TestOutboxFullByBytes(t *testing.T) {
	buf, err := encodeRecord(testRecord(t, "1001", 1))
	require.NoError(t, err)
	size := int64(len(buf))

	o, _ := openTestOutbox(t, t.TempDir(), 100, 2*size+size/2)
	require.NoError(t, o.append(testRecord(t, "1001", 1), false))
	require.NoError(t, o.append(testRecord(t, "1001", 2), false))
	err = o.append(testRecord(t, "1001", 3), false)
	require.ErrorIs(t, err, ErrOutboxFull)
	assert.Contains(t, err.Error(), "outbox max bytes")
}

func TestOutboxCompactsStoredPrefix(t *testing.T) {
	dir := t.TempDir()
	buf, err := encodeRecord(testRecord(t, "1001", 1))
	require.NoError(t, err)
	size := int64(len(buf))

	o, _ := openTestOutbox(t, dir, 100, 3*size+size/2)
	for rev := uint64(1); rev <= 3; rev++ {
		require.NoError(t, o.append(testRecord(t, "1001", rev), false))
	}
	require.NoError(t, o.ack(1))
	require.NoError(t, o.ack(2))
	require.NoError(t, o.append(testRecord(t, "1001", 4), false), "compaction makes room")
	require.NoError(t, o.append(testRecord(t, "1001", 5), false))
	assert.LessOrEqual(t, fileSize(t, filepath.Join(dir, outboxLogName)), 3*size+size/2)
	require.NoError(t, o.close())

	reopened, _ := openTestOutbox(t, dir, 100, 3*size+size/2)
	assert.Equal(t, []string{"event-1001-3", "event-1001-4", "event-1001-5"}, pendingIDs(reopened))
	assert.NoFileExists(t, filepath.Join(dir, outboxTmpName))
}

func TestOutboxRecordTooLarge(t *testing.T) {
	o, _ := openTestOutbox(t, t.TempDir(), 100, 4<<20)
	rec := testRecord(t, "1001", 1)
	rec.Event = json.RawMessage(`"` + string(make([]byte, maxRecordSize)) + `"`)
	for i := range rec.Event[1 : len(rec.Event)-1] {
		rec.Event[i+1] = 'x'
	}
	err := o.append(rec, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "byte limit")
	entries, _ := o.depth()
	assert.Zero(t, entries)
}

func TestApplyPendingNewestWins(t *testing.T) {
	sessions := map[string]agent.Session{
		"1001": {AgentID: "1001", State: agent.StateReady, Revision: 5},
		"1002": {AgentID: "1002", State: agent.StateReady, Revision: 1},
	}
	pending := []record{
		testRecord(t, "1001", 4),
		testRecord(t, "1002", 2),
		testRecord(t, "1003", 1),
	}
	pending[1].Session = json.RawMessage(`{"agent_id":"1002","state":"PAUSED","pause_id":"2","since":"2026-12-04T20:15:03Z","revision":2}`)

	require.NoError(t, applyPending(sessions, pending))
	assert.Equal(t, uint64(5), sessions["1001"].Revision, "bucket value newer than the outbox entry")
	assert.Equal(t, agent.StatePaused, sessions["1002"].State)
	assert.Equal(t, "2", sessions["1002"].PauseID)
	assert.Equal(t, uint64(1), sessions["1003"].Revision)
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func flipByte(t *testing.T, path string, offset int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = f.ReadAt(b, offset)
	require.NoError(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, offset)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}
