package events

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOutboxHeldRecordHoldsBackItsAgent(t *testing.T) {
	o, _ := openTestOutbox(t, t.TempDir(), 100, 1<<20)
	require.NoError(t, o.append(testRecord(t, "1001", 1), true))
	require.NoError(t, o.append(testRecord(t, "1001", 2), false))
	require.NoError(t, o.append(testRecord(t, "1002", 1), false))

	head, ok := o.head()
	require.True(t, ok)
	assert.Equal(t, "event-1002-1", head.EventID, "another agent's record goes first")
	require.NoError(t, o.ack(head.Seq))
	_, ok = o.head()
	assert.False(t, ok, "the record behind the held one of its agent waits")
	assert.Zero(t, o.ackedSeq, "the acknowledged number stays below the held record")

	o.release(1)
	head, ok = o.head()
	require.True(t, ok)
	assert.Equal(t, "event-1001-1", head.EventID)
	require.NoError(t, o.ack(1))
	assert.Equal(t, uint64(1), o.ackedSeq)
	head, ok = o.head()
	require.True(t, ok)
	assert.Equal(t, "event-1001-2", head.EventID)
	require.NoError(t, o.ack(2))
	assert.Equal(t, uint64(3), o.ackedSeq, "past the record stored out of order")
}

func TestOutboxOutOfOrderRecordReplayed(t *testing.T) {
	dir := t.TempDir()
	o, _ := openTestOutbox(t, dir, 100, 1<<20)
	require.NoError(t, o.append(testRecord(t, "1001", 1), true))
	require.NoError(t, o.append(testRecord(t, "1002", 1), false))
	require.NoError(t, o.ack(2))
	require.NoError(t, o.close())

	reopened, _ := openTestOutbox(t, dir, 100, 1<<20)
	// The held record counts as done, and the record stored while it was
	// held is stored again; the stream drops that copy by its id.
	assert.Equal(t, []string{"event-1001-1", "event-1002-1"}, pendingIDs(reopened))
}

func TestOutboxWithdrawnRecordSkippedAfterReopen(t *testing.T) {
	dir := t.TempDir()
	o, _ := openTestOutbox(t, dir, 100, 1<<20)
	require.NoError(t, o.append(testRecord(t, "1001", 1), true))
	require.NoError(t, o.append(testRecord(t, "1002", 1), false))

	require.NoError(t, o.withdraw(1))
	head, ok := o.head()
	require.True(t, ok, "the record behind the withdrawn one goes on")
	assert.Equal(t, "event-1002-1", head.EventID)
	require.Error(t, o.withdraw(1), "a record withdrawn twice")
	require.NoError(t, o.close())

	reopened, _ := openTestOutbox(t, dir, 100, 1<<20)
	assert.Equal(t, []string{"event-1002-1"}, pendingIDs(reopened))
	assert.Equal(t, uint64(4), reopened.nextSeq, "the withdrawal has sequence number 3")
	_, bytes := reopened.depth()
	assert.Equal(t, o.pendingBytes, bytes)
}

func TestOutboxHeldRecordKeptAfterCrash(t *testing.T) {
	dir := t.TempDir()
	o, _ := openTestOutbox(t, dir, 100, 1<<20)
	require.NoError(t, o.append(testRecord(t, "1001", 1), true))
	// The process ends before release or withdraw. Releases are not
	// written to disk, so the record counts as done.
	require.NoError(t, o.close())

	reopened, _ := openTestOutbox(t, dir, 100, 1<<20)
	assert.Equal(t, []string{"event-1001-1"}, pendingIDs(reopened))
	head, ok := reopened.head()
	require.True(t, ok, "a record read back from the file is not held")
	assert.Equal(t, uint64(1), head.Seq)
}

func TestOutboxWithdrawAfterLaterRecordsStored(t *testing.T) {
	dir := t.TempDir()
	o, _ := openTestOutbox(t, dir, 100, 1<<20)
	require.NoError(t, o.append(testRecord(t, "1002", 1), false))
	require.NoError(t, o.append(testRecord(t, "1001", 1), true))
	require.NoError(t, o.ack(1))
	require.NoError(t, o.withdraw(2))
	require.NoError(t, o.append(testRecord(t, "1002", 2), false))
	require.NoError(t, o.ack(4))
	require.NoError(t, o.close())

	reopened, _ := openTestOutbox(t, dir, 100, 1<<20)
	assert.Empty(t, pendingIDs(reopened))
	assert.Equal(t, uint64(5), reopened.nextSeq)
}

func TestOutboxWithdrawInFullOutboxCompacts(t *testing.T) {
	dir := t.TempDir()
	one, err := encodeRecord(testRecord(t, "1001", 1))
	require.NoError(t, err)
	// Room for two records and no withdrawal after them.
	maxBytes := int64(2*len(one)) + 10
	o, _ := openTestOutbox(t, dir, 100, maxBytes)
	require.NoError(t, o.append(testRecord(t, "1002", 1), false))
	require.NoError(t, o.append(testRecord(t, "1001", 1), true))

	require.NoError(t, o.withdraw(2))
	assert.Equal(t, []string{"event-1002-1"}, pendingIDs(o))
	assert.Equal(t, int64(len(one)), fileSize(t, filepath.Join(dir, outboxLogName)), "rewritten with the pending record only")
	require.NoError(t, o.append(testRecord(t, "1002", 2), false), "room again")
	require.NoError(t, o.close())

	reopened, _ := openTestOutbox(t, dir, 100, maxBytes)
	assert.Equal(t, []string{"event-1002-1", "event-1002-2"}, pendingIDs(reopened))
}

func TestReadRecordRejectsBadWithdrawal(t *testing.T) {
	dir := t.TempDir()
	o, _ := openTestOutbox(t, dir, 100, 1<<20)
	require.NoError(t, o.append(testRecord(t, "1001", 1), false))
	buf, err := encodeRecord(record{Seq: 2, AgentID: "1001", Withdraws: 5})
	require.NoError(t, err)
	_, err = o.file.WriteAt(buf, o.size)
	require.NoError(t, err)
	require.NoError(t, o.close())

	reopened, logs := openTestOutbox(t, dir, 100, 1<<20)
	assert.Equal(t, []string{"event-1001-1"}, pendingIDs(reopened))
	assert.Contains(t, logs.String(), "withdraws the later sequence 5")
}
