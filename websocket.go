package instant

// A websocket client just large enough for Check to speak to Centrifugo as
// a browser does (RFC 6455, Centrifugo's JSON protocol), with no
// dependency beyond the standard library. Everything it reads is bounded:
// the handshake and the frames together by wsReadBudget, a message by
// wsMaxMessage, and the time by the context's deadline.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	// wsReadBudget bounds all that one connection reads, handshake included.
	wsReadBudget = 4 << 20
	// wsMaxMessage bounds one message (all its frames).
	wsMaxMessage = 1 << 20
	// wsAcceptGUID is RFC 6455's key suffix for Sec-WebSocket-Accept.
	wsAcceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
)

// Frame opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

var (
	errWSBudget   = errors.New("the server sent more than any Centrifugo answer to Check")
	errWSProtocol = errors.New("the server broke the websocket protocol")
)

// wsStatusError is a handshake answered with another status than 101.
type wsStatusError struct{ code int }

func (e *wsStatusError) Error() string { return fmt.Sprintf("http status %d", e.code) }

// wsConn is a client connection after its handshake.
type wsConn struct {
	conn net.Conn
	br   *bufio.Reader
	// joined holds the channels a join push came on (exchange reads them
	// on the way to the replies).
	joined map[string]bool
}

// wsClosed is the close frame a server ended the connection with.
type wsClosed struct {
	code   int
	reason string
}

func (e *wsClosed) Error() string {
	return fmt.Sprintf("the connection was closed with code %d %q", e.code, e.reason)
}

// readBudget reads at most left bytes from r, then fails.
type readBudget struct {
	r    io.Reader
	left int64
}

func (b *readBudget) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errWSBudget
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// dialWebsocket opens rawURL (ws or wss) and makes the handshake, with
// origin as its Origin header unless empty. Reads and writes end at ctx's
// deadline; the caller makes them end when ctx is canceled (expire).
func dialWebsocket(ctx context.Context, rawURL, origin string) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, errors.New("not a ws or wss URL")
	}
	host := u.Host
	if u.Port() == "" {
		if u.Scheme == "wss" {
			host = net.JoinHostPort(u.Hostname(), "443")
		} else {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	var conn net.Conn
	if u.Scheme == "wss" {
		// The system's roots, as a browser's: the address is theirs.
		tlsConf := &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}}
		conn, err = (&tls.Dialer{Config: tlsConf}).DialContext(ctx, "tcp", host)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", host)
	}
	if err != nil {
		return nil, err
	}
	c := &wsConn{conn: conn, br: bufio.NewReader(&readBudget{r: conn, left: wsReadBudget})}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if err := c.handshake(u, origin); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *wsConn) handshake(u *url.URL, origin string) error {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Scheme: "http", Host: u.Host, Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Host:       u.Host,
		Header: http.Header{
			"Upgrade":               {"websocket"},
			"Connection":            {"Upgrade"},
			"Sec-Websocket-Key":     {key},
			"Sec-Websocket-Version": {"13"},
			"User-Agent":            {"instant-check"},
		},
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if err := req.Write(c.conn); err != nil {
		return err
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return &wsStatusError{code: resp.StatusCode}
	}
	sum := sha1.Sum([]byte(key + wsAcceptGUID))
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") ||
		resp.Header.Get("Sec-Websocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		return fmt.Errorf("%w: a 101 answer without a valid websocket upgrade", errWSProtocol)
	}
	if resp.Header.Get("Sec-Websocket-Extensions") != "" {
		return fmt.Errorf("%w: an extension the handshake did not ask for", errWSProtocol)
	}
	return nil
}

// expire makes the connection's reads and writes fail now.
func (c *wsConn) expire() { _ = c.conn.SetDeadline(time.Unix(1, 0)) }

// close sends a normal close frame, briefly, and closes the connection.
func (c *wsConn) close() {
	_ = c.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_ = c.writeFrame(opClose, []byte{0x03, 0xe8}) // 1000
	_ = c.conn.Close()
}

// writeFrame writes one final, masked frame.
func (c *wsConn) writeFrame(op byte, payload []byte) error {
	buf := make([]byte, 0, 14+len(payload))
	buf = append(buf, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		buf = append(buf, 0x80|byte(n))
	case n <= 0xffff:
		buf = append(buf, 0x80|126)
		buf = binary.BigEndian.AppendUint16(buf, uint16(n))
	default:
		buf = append(buf, 0x80|127)
		buf = binary.BigEndian.AppendUint64(buf, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	buf = append(buf, mask[:]...)
	for k, b := range payload {
		buf = append(buf, b^mask[k%4])
	}
	_, err := c.conn.Write(buf)
	return err
}

// readFrame reads one frame of at most limit payload bytes.
func (c *wsConn) readFrame(limit int) (fin bool, op byte, payload []byte, err error) {
	var head [2]byte
	if _, err := io.ReadFull(c.br, head[:]); err != nil {
		return false, 0, nil, err
	}
	fin, op = head[0]&0x80 != 0, head[0]&0x0f
	if head[0]&0x70 != 0 {
		return false, 0, nil, fmt.Errorf("%w: reserved bits set", errWSProtocol)
	}
	if head[1]&0x80 != 0 {
		return false, 0, nil, fmt.Errorf("%w: a masked frame from the server", errWSProtocol)
	}
	n := uint64(head[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return false, 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return false, 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if op >= opClose && (!fin || n > 125) {
		return false, 0, nil, fmt.Errorf("%w: a fragmented or long control frame", errWSProtocol)
	}
	if n > uint64(limit) {
		return false, 0, nil, errWSBudget
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, payload); err != nil {
		return false, 0, nil, err
	}
	return fin, op, payload, nil
}

// readMessage reads one data message, whole, answering pings on the way,
// or the close frame that ends the connection.
func (c *wsConn) readMessage() (msg []byte, closed *wsClosed, err error) {
	started := false
	for {
		fin, op, payload, err := c.readFrame(wsMaxMessage - len(msg))
		if err != nil {
			return nil, nil, err
		}
		switch op {
		case opPing:
			_ = c.writeFrame(opPong, payload) // a failed write shows in the next read
			continue
		case opPong:
			continue
		case opClose:
			closed := &wsClosed{code: 1005}
			if len(payload) >= 2 {
				closed.code = int(binary.BigEndian.Uint16(payload))
				closed.reason = string(bytes.ToValidUTF8(payload[2:], []byte("?")))
			}
			return nil, closed, nil
		case opText, opBinary:
			if started {
				return nil, nil, fmt.Errorf("%w: a new message inside a fragmented one", errWSProtocol)
			}
			started = true
		case opContinuation:
			if !started {
				return nil, nil, fmt.Errorf("%w: a continuation frame with no message", errWSProtocol)
			}
		default:
			return nil, nil, fmt.Errorf("%w: unknown opcode %d", errWSProtocol, op)
		}
		msg = append(msg, payload...)
		if fin {
			return msg, nil, nil
		}
	}
}

// The commands and replies of Centrifugo's JSON client protocol that
// Check uses.
type (
	wsCommand struct {
		ID            uint32       `json:"id"`
		Connect       *wsConnect   `json:"connect,omitempty"`
		Subscribe     *wsSubscribe `json:"subscribe,omitempty"`
		Unsubscribe   *wsChannel   `json:"unsubscribe,omitempty"`
		PresenceStats *wsChannel   `json:"presence_stats,omitempty"`
	}
	wsConnect struct {
		Token string `json:"token"`
		Name  string `json:"name,omitempty"`
	}
	wsSubscribe struct {
		Channel string `json:"channel"`
		Token   string `json:"token"`
	}
	wsChannel struct {
		Channel string `json:"channel"`
	}
	wsError struct {
		Code    uint32 `json:"code"`
		Message string `json:"message"`
	}
	wsReply struct {
		ID        uint32   `json:"id"`
		Error     *wsError `json:"error"`
		Subscribe *struct {
			Recoverable bool `json:"recoverable"`
		} `json:"subscribe"`
		Push *struct {
			Channel string          `json:"channel"`
			Join    json.RawMessage `json:"join"`
		} `json:"push"`
	}
)

// wsFrameTarget is the size past which exchange starts another frame:
// Centrifugo reads messages of up to 64 KiB (client.websocket.message_size_limit).
const wsFrameTarget = 32 << 10

// exchange sends cmds, one JSON command a line, in as few messages as
// Centrifugo takes, and reads until each has its reply (pushes and pings,
// with no id, are skipped, but for noting the channels of join pushes in
// c.joined). A close frame from the server is returned as a *wsClosed
// error.
func (c *wsConn) exchange(cmds []wsCommand) (map[uint32]wsReply, error) {
	var out []byte
	want := map[uint32]bool{}
	for _, cmd := range cmds {
		raw, err := json.Marshal(cmd)
		if err != nil {
			return nil, err
		}
		if len(out) > 0 && len(out)+1+len(raw) > wsFrameTarget {
			if err := c.writeFrame(opText, out); err != nil {
				return nil, err
			}
			out = out[:0]
		}
		if len(out) > 0 {
			out = append(out, '\n')
		}
		out = append(out, raw...)
		want[cmd.ID] = true
	}
	if len(out) > 0 {
		if err := c.writeFrame(opText, out); err != nil {
			return nil, err
		}
	}
	replies := make(map[uint32]wsReply, len(cmds))
	for len(replies) < len(want) {
		msg, closed, err := c.readMessage()
		if closed != nil {
			return replies, closed
		}
		if err != nil {
			return replies, err
		}
		for line := range bytes.SplitSeq(msg, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var rep wsReply
			if err := json.Unmarshal(line, &rep); err != nil {
				return replies, fmt.Errorf("an answer that is not Centrifugo's JSON protocol: %v", err)
			}
			if want[rep.ID] {
				replies[rep.ID] = rep
			}
			if rep.ID == 0 && rep.Push != nil && rep.Push.Join != nil {
				if c.joined == nil {
					c.joined = map[string]bool{}
				}
				c.joined[rep.Push.Channel] = true
			}
		}
	}
	return replies, nil
}
