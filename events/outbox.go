package events

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/contactcenter/agentd/agent"
)

// ErrOutboxFull is wrapped, together with agent.ErrStoreUnavailable, by
// Commit when the outbox has reached OutboxMaxEntries or OutboxMaxBytes.
var ErrOutboxFull = errors.New("outbox full")

// errCorruptRecord is wrapped by readRecord for a record that is cut short
// or fails its checksum.
var errCorruptRecord = errors.New("torn or corrupt outbox record")

// Outbox file names inside Config.DataDir/outbox.
const (
	outboxLogName = "outbox.log"
	outboxAckName = "outbox.ack"
	outboxTmpName = "outbox.log.tmp"
)

// A record on disk is an 8-byte header (big-endian payload length, then the
// CRC-32C of the payload) followed by the payload, a JSON record.
const (
	recordHeaderSize = 8
	// maxRecordSize bounds one record payload. A session with a few
	// hundred queue memberships stays far below it.
	maxRecordSize = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is one change waiting to be stored in NATS: the exact event
// payload to publish and the exact session value to put in the bucket.
//
// A record with Withdraws set is a withdrawal instead: it names the
// sequence number of a staged change that did not happen, and carries no
// event or session. It is never stored in NATS.
type record struct {
	Seq       uint64          `json:"seq"`
	AgentID   string          `json:"agent_id"`
	Type      agent.EventType `json:"type,omitempty"`
	EventID   string          `json:"event_id,omitempty"`
	Event     json.RawMessage `json:"event,omitempty"`
	Session   json.RawMessage `json:"session,omitempty"`
	Withdraws uint64          `json:"withdraws,omitempty"`
}

type pendingRecord struct {
	rec  record
	size int64 // header and payload
	// held marks a staged record whose request still runs. The flusher
	// stores no record of that agent until it is released or withdrawn.
	held bool
}

// outbox is an append-only file of records not yet stored in NATS, oldest
// first, and a second file with the acknowledged number: every record up
// to it is stored or withdrawn. Records up to that number are skipped when
// the file is read again. The file is truncated when no record is pending
// and it has grown to truncateSize, and rewritten with only the pending
// records when it would outgrow maxBytes.
//
// An outbox is not safe for concurrent use, so Store guards it with its mutex.
type outbox struct {
	dir        string
	log        *slog.Logger
	maxEntries int
	maxBytes   int64

	file    *os.File
	ackFile *os.File
	size    int64 // bytes of whole records in file, stored or not
	// truncateSize is the file size from which a drained file is
	// truncated; defaultTruncateSize unless a test sets it.
	truncateSize int64

	pending      []pendingRecord
	pendingBytes int64
	ackedSeq     uint64
	nextSeq      uint64
}

// openOutbox opens or creates the outbox in dir and loads its pending
// records. A torn or corrupt record and everything after it is cut off
// with a warning, because a record is only acknowledged to the caller once
// it was synced whole.
func openOutbox(dir string, maxEntries int, maxBytes int64, log *slog.Logger) (*outbox, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create outbox directory: %w", err)
	}
	o := &outbox{dir: dir, log: log, maxEntries: maxEntries, maxBytes: maxBytes, truncateSize: defaultTruncateSize}

	var err error
	if o.ackFile, err = os.OpenFile(filepath.Join(dir, outboxAckName), os.O_RDWR|os.O_CREATE, 0o640); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	if o.file, err = os.OpenFile(filepath.Join(dir, outboxLogName), os.O_RDWR|os.O_CREATE, 0o640); err != nil {
		_ = o.ackFile.Close()
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	if err := o.load(); err != nil {
		_ = o.close()
		return nil, err
	}
	return o, nil
}

func (o *outbox) load() error {
	if err := syncDir(o.dir); err != nil {
		return err
	}
	if err := o.readAck(); err != nil {
		return err
	}

	lastSeq, err := o.readRecords()
	if err != nil {
		return err
	}
	o.nextSeq = max(lastSeq, o.ackedSeq) + 1

	if len(o.pending) == 0 && o.size > 0 {
		return o.truncate()
	}
	if len(o.pending) > 0 {
		o.log.Info("outbox contains changes not yet stored in NATS", "entries", len(o.pending), "bytes", o.pendingBytes)
	}
	return nil
}

// readAck reads the sequence number of the last stored record. A missing
// or short value reads as 0. At worst records are then stored again, and
// the stream drops the duplicate events by id.
func (o *outbox) readAck() error {
	var buf [8]byte
	n, err := o.ackFile.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read outbox ack: %w", err)
	}
	if n == len(buf) {
		o.ackedSeq = binary.BigEndian.Uint64(buf[:])
	}
	return nil
}

// readRecords loads the records after the acknowledged sequence number and
// returns the highest sequence number in the file.
func (o *outbox) readRecords() (uint64, error) {
	r := bufio.NewReader(io.NewSectionReader(o.file, 0, math.MaxInt64))
	var offset int64
	var lastSeq uint64
	for {
		rec, n, err := readRecord(r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil && rec.Seq <= lastSeq {
			err = fmt.Errorf("%w: sequence %d after %d", errCorruptRecord, rec.Seq, lastSeq)
		}
		if err != nil {
			return lastSeq, o.discardTail(offset, err)
		}

		offset += n
		lastSeq = rec.Seq
		switch {
		case rec.Withdraws != 0:
			// A staged record without a withdrawal counts as done:
			// releases are not written to disk, so it looks the same
			// as a released one.
			o.removePending(rec.Withdraws)
		case rec.Seq > o.ackedSeq:
			o.pending = append(o.pending, pendingRecord{rec: rec, size: n})
			o.pendingBytes += n
		}
	}
	o.size = offset
	return lastSeq, nil
}

// discardTail cuts the file at offset, the end of the last whole record.
func (o *outbox) discardTail(offset int64, cause error) error {
	info, err := o.file.Stat()
	if err != nil {
		return fmt.Errorf("stat outbox: %w", err)
	}
	o.log.Warn("discarding torn or corrupt outbox tail; changes in it were never acknowledged",
		"offset", offset, "bytes", info.Size()-offset, "err", cause)
	o.size = offset
	if err := o.file.Truncate(offset); err != nil {
		return fmt.Errorf("truncate outbox: %w", err)
	}
	if err := o.file.Sync(); err != nil {
		return fmt.Errorf("sync outbox: %w", err)
	}
	return nil
}

// readRecord reads one record. It returns io.EOF at a clean end of file
// and an error wrapping errCorruptRecord for a partial or damaged record.
func readRecord(r io.Reader) (record, int64, error) {
	var header [recordHeaderSize]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return record{}, 0, io.EOF
		}
		return record{}, 0, fmt.Errorf("%w: header: %w", errCorruptRecord, err)
	}
	length := binary.BigEndian.Uint32(header[0:4])
	if length == 0 || length > maxRecordSize {
		return record{}, 0, fmt.Errorf("%w: payload length %d out of range", errCorruptRecord, length)
	}

	payload := make([]byte, length)
	if _, err := io.ReadFull(r, payload); err != nil {
		return record{}, 0, fmt.Errorf("%w: payload: %w", errCorruptRecord, err)
	}
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(header[4:8]) {
		return record{}, 0, fmt.Errorf("%w: checksum mismatch", errCorruptRecord)
	}

	var rec record
	if err := json.Unmarshal(payload, &rec); err != nil {
		return record{}, 0, fmt.Errorf("%w: %w", errCorruptRecord, err)
	}
	switch {
	case rec.Seq == 0 || rec.AgentID == "":
		return record{}, 0, fmt.Errorf("%w: sequence %d lacks a field", errCorruptRecord, rec.Seq)
	case rec.Withdraws >= rec.Seq:
		return record{}, 0, fmt.Errorf("%w: sequence %d withdraws the later sequence %d", errCorruptRecord, rec.Seq, rec.Withdraws)
	case rec.Withdraws == 0 && (rec.EventID == "" || len(rec.Event) == 0 || len(rec.Session) == 0):
		return record{}, 0, fmt.Errorf("%w: sequence %d lacks a field", errCorruptRecord, rec.Seq)
	}
	return rec, int64(recordHeaderSize + len(payload)), nil
}

func encodeRecord(rec record) ([]byte, error) {
	payload, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encode outbox record: %w", err)
	}
	if len(payload) > maxRecordSize {
		return nil, fmt.Errorf("outbox record of agent %s is %d bytes, above the %d byte limit", rec.AgentID, len(payload), maxRecordSize)
	}

	buf := make([]byte, recordHeaderSize+len(payload))
	binary.BigEndian.PutUint32(buf[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[4:8], crc32.Checksum(payload, castagnoli))
	copy(buf[recordHeaderSize:], payload)
	return buf, nil
}

// append assigns rec the next sequence number and writes it durably: it
// returns nil only after the file was synced. A held record is a staged
// one: the flusher stores no record of its agent until release or
// withdraw.
func (o *outbox) append(rec record, held bool) error {
	rec.Seq = o.nextSeq
	buf, err := encodeRecord(rec)
	if err != nil {
		return err
	}
	size := int64(len(buf))
	if err := o.checkRoom(size); err != nil {
		return err
	}
	if o.size+size > o.maxBytes {
		if err := o.compact(); err != nil {
			return err
		}
	}

	if err := o.writeSynced(buf); err != nil {
		return err
	}
	o.size += size
	o.pending = append(o.pending, pendingRecord{rec: rec, size: size, held: held})
	o.pendingBytes += size
	o.nextSeq++
	return nil
}

// release lets the flusher store the held record seq.
func (o *outbox) release(seq uint64) {
	if i := o.pendingIndex(seq); i >= 0 {
		o.pending[i].held = false
	}
}

// withdraw removes the held record seq and writes a withdrawal record
// after it, so that the record is not stored after a restart either. The
// record leaves the pending list even when the write fails, so the flusher
// does not wait for it. On an error a restart may store the record.
func (o *outbox) withdraw(seq uint64) error {
	i := o.pendingIndex(seq)
	if i < 0 {
		return fmt.Errorf("outbox withdraw of sequence %d: no such pending record", seq)
	}
	agentID := o.pending[i].rec.AgentID
	o.removePending(seq)

	// The withdrawal bypasses checkRoom: it ends a pending record, so a
	// full outbox must still take it.
	buf, err := encodeRecord(record{Seq: o.nextSeq, AgentID: agentID, Withdraws: seq})
	if err != nil {
		return err
	}
	size := int64(len(buf))
	if o.size+size > o.maxBytes {
		// The rewritten file no longer holds the withdrawn record.
		return o.compact()
	}
	if err := o.writeSynced(buf); err != nil {
		return err
	}
	o.size += size
	o.nextSeq++
	return o.advanceAck()
}

// pendingIndex returns the index of record seq in the pending list, which
// is sorted by sequence number, or -1.
func (o *outbox) pendingIndex(seq uint64) int {
	i, found := slices.BinarySearchFunc(o.pending, seq, func(p pendingRecord, seq uint64) int {
		return cmp.Compare(p.rec.Seq, seq)
	})
	if !found {
		return -1
	}
	return i
}

// removePending drops the pending record seq and reports whether there
// was one.
func (o *outbox) removePending(seq uint64) bool {
	i := o.pendingIndex(seq)
	if i < 0 {
		return false
	}
	o.pendingBytes -= o.pending[i].size
	o.pending = slices.Delete(o.pending, i, i+1)
	return true
}

func (o *outbox) checkRoom(size int64) error {
	if len(o.pending) >= o.maxEntries {
		return fmt.Errorf("%w: %d changes wait for NATS, the outbox max entries: restore the NATS connection or raise the limit",
			ErrOutboxFull, len(o.pending))
	}
	if o.pendingBytes+size > o.maxBytes {
		return fmt.Errorf("%w: %d bytes wait for NATS and the next change needs %d, above the outbox max bytes %d: restore the NATS connection or raise the limit",
			ErrOutboxFull, o.pendingBytes, size, o.maxBytes)
	}
	return nil
}

// writeSynced writes buf at the end of the file and syncs it. On failure it
// cuts the file back, so no partial record stays in front of later ones.
func (o *outbox) writeSynced(buf []byte) error {
	_, err := o.file.WriteAt(buf, o.size)
	if err == nil {
		err = o.file.Sync()
	}
	if err != nil {
		if terr := o.file.Truncate(o.size); terr != nil {
			o.log.Error("truncating outbox after a failed write failed", "err", terr)
		}
		return fmt.Errorf("write outbox: %w", err)
	}
	return nil
}

// head returns the oldest pending record that may be stored now: one that
// is not held and has no older pending record of its agent. So a staged
// change holds back the later changes of its own agent only.
func (o *outbox) head() (record, bool) {
	var waiting map[string]bool // agents with an older pending record
	for _, p := range o.pending {
		if !p.held && !waiting[p.rec.AgentID] {
			return p.rec, true
		}
		if waiting == nil {
			waiting = map[string]bool{}
		}
		waiting[p.rec.AgentID] = true
	}
	return record{}, false
}

// isPending reports whether record seq waits to be stored.
func (o *outbox) isPending(seq uint64) bool {
	return o.pendingIndex(seq) >= 0
}

// ack removes the pending record seq after it was stored in NATS.
func (o *outbox) ack(seq uint64) error {
	if !o.removePending(seq) {
		return fmt.Errorf("outbox ack of sequence %d: no such pending record", seq)
	}
	if err := o.advanceAck(); err != nil {
		return err
	}
	if len(o.pending) == 0 && o.size >= o.truncateSize {
		return o.truncate()
	}
	return nil
}

// advanceAck raises the acknowledged number to just below the oldest
// pending record, or to the last sequence number when none is pending.
// Records above it that were stored while an older record was held are
// stored again after a restart, and the stream drops those copies by id
// within its duplicate window (DefaultDuplicateWindow).
//
// The number is written without a sync: it survives a crash of the
// process but maybe not of the machine, and a lost value only makes the
// flusher store a few records again.
func (o *outbox) advanceAck() error {
	acked := o.nextSeq - 1
	if len(o.pending) > 0 {
		acked = o.pending[0].rec.Seq - 1
	}
	if acked <= o.ackedSeq {
		return nil
	}
	o.ackedSeq = acked
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], acked)
	if _, err := o.ackFile.WriteAt(buf[:], 0); err != nil {
		return fmt.Errorf("write outbox ack: %w", err)
	}
	return nil
}

// defaultTruncateSize lets a drained outbox file grow to 64 KiB, about 100
// records, before it is truncated. While NATS is up every change passes
// through the outbox and is stored at once, so truncating at each drain
// cost one truncation per Commit. BenchmarkCommitEmbedded took 0.46 ms with
// that and 0.31 ms with this size, on the machine of docs/benchmarks.md.
const defaultTruncateSize = 64 << 10

// truncate empties the file once every record in it was stored.
//
// It syncs neither file: the next append's sync makes the truncation
// durable together with its record. After a machine crash before that,
// the file still holds stored records, and those after a lost
// acknowledged number are stored again, which ack already accepts.
// BenchmarkCommitEmbedded took 0.75 ms with the two syncs and 0.46 ms
// without.
func (o *outbox) truncate() error {
	if err := o.file.Truncate(0); err != nil {
		return fmt.Errorf("truncate outbox: %w", err)
	}
	o.size = 0
	o.pending = nil
	return nil
}

// compact rewrites the file with only the pending records: it writes a
// temporary file, syncs it and renames it over the outbox.
func (o *outbox) compact() error {
	tmpPath := filepath.Join(o.dir, outboxTmpName)
	tmp, err := os.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("compact outbox: %w", err)
	}
	if err := writeRecords(tmp, o.pending); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmpPath)
		return fmt.Errorf("compact outbox: %w", err)
	}
	if err := os.Rename(tmpPath, filepath.Join(o.dir, outboxLogName)); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("compact outbox: %w", err)
	}
	if err := syncDir(o.dir); err != nil {
		_ = tmp.Close()
		return err
	}

	_ = o.file.Close()
	o.file = tmp
	o.size = o.pendingBytes
	return nil
}

func writeRecords(f *os.File, records []pendingRecord) error {
	w := bufio.NewWriter(f)
	for _, p := range records {
		buf, err := encodeRecord(p.rec)
		if err != nil {
			return err
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Sync()
}

// records returns a copy of the pending records, oldest first.
func (o *outbox) records() []record {
	out := make([]record, 0, len(o.pending))
	for _, p := range o.pending {
		out = append(out, p.rec)
	}
	return out
}

func (o *outbox) depth() (entries int, bytes int64) {
	return len(o.pending), o.pendingBytes
}

func (o *outbox) close() error {
	return errors.Join(o.file.Close(), o.ackFile.Close())
}

// syncDir syncs a directory, so that a file created or renamed in it
// survives a crash of the machine.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
