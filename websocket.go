package instant

// Check's websocket to Centrifugo, opened as a browser's
// (gorilla/websocket), and the few commands of Centrifugo's JSON protocol
// it sends. Everything it reads is bounded: the handshake and the frames
// together by wsReadBudget, a message by wsMaxMessage, and the time by
// the context of the dial.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// wsReadBudget bounds all that one connection reads, handshake included.
	wsReadBudget = 4 << 20
	// wsMaxMessage bounds one message (all its frames).
	wsMaxMessage = 1 << 20
	// wsFrameTarget is the size past which exchange starts another
	// message: Centrifugo reads messages of up to 64 KiB
	// (client.websocket.message_size_limit).
	wsFrameTarget = 32 << 10
)

var errWSBudget = errors.New("the server sent more than any Centrifugo answer to Check")

// wsStatusError is a handshake answered with another status than 101.
type wsStatusError struct{ code int }

func (e *wsStatusError) Error() string { return fmt.Sprintf("http status %d", e.code) }

// wsConn is a client connection after its handshake.
type wsConn struct {
	ws   *websocket.Conn
	stop func() bool // ends the watch of the dial's context
	// joined holds the channels a join push came on (exchange reads them
	// on the way to the replies).
	joined map[string]bool
}

// budgetConn is a connection that reads at most left bytes, then fails.
type budgetConn struct {
	net.Conn
	left int
}

func (c *budgetConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errWSBudget
	}
	n, err := c.Conn.Read(p[:min(len(p), c.left)])
	c.left -= n
	return n, err
}

// dialWebsocket opens rawURL (ws or wss, with the system's roots, as a
// browser's: the address is theirs) and makes the handshake, with origin
// as its Origin header unless empty. The connection is closed when ctx
// ends, whatever it is doing then.
func dialWebsocket(ctx context.Context, rawURL, origin string) (*wsConn, error) {
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &budgetConn{Conn: conn, left: wsReadBudget}, nil
	}}
	header := http.Header{"User-Agent": {"instant-check"}}
	if origin != "" {
		header.Set("Origin", origin)
	}
	ws, resp, err := d.DialContext(ctx, rawURL, header)
	switch {
	case errors.Is(err, websocket.ErrBadHandshake) && resp.StatusCode != http.StatusSwitchingProtocols:
		return nil, &wsStatusError{code: resp.StatusCode}
	case err != nil:
		return nil, err
	case resp.Header.Get("Sec-Websocket-Extensions") != "":
		// gorilla would inflate a permessage-deflate it did not ask for,
		// past the read limit, which counts the bytes on the wire.
		ws.Close()
		return nil, errors.New("websocket: the server answered with an extension the handshake did not ask for")
	}
	ws.SetReadLimit(wsMaxMessage)
	ws.SetPingHandler(func(data string) error {
		// A pong that cannot be sent shows in the next read, if at all.
		_ = ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		return nil
	})
	return &wsConn{ws: ws, stop: context.AfterFunc(ctx, func() { ws.Close() })}, nil
}

// close sends a normal close frame, briefly, and closes the connection.
func (c *wsConn) close() {
	c.stop()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(100*time.Millisecond))
	_ = c.ws.Close()
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

// exchange sends cmds, one JSON command a line, in as few messages as
// Centrifugo takes, and reads until each has its reply (pushes and pings,
// with no id, are skipped, but for noting the channels of join pushes in
// c.joined). A close frame from the server is returned as a
// *websocket.CloseError.
func (c *wsConn) exchange(cmds []wsCommand) (map[uint32]wsReply, error) {
	var out []byte
	want := map[uint32]bool{}
	for _, cmd := range cmds {
		raw, err := json.Marshal(cmd)
		if err != nil {
			return nil, err
		}
		if len(out) > 0 && len(out)+1+len(raw) > wsFrameTarget {
			if err := c.ws.WriteMessage(websocket.TextMessage, out); err != nil {
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
	if err := c.ws.WriteMessage(websocket.TextMessage, out); err != nil {
		return nil, err
	}
	replies := make(map[uint32]wsReply, len(cmds))
	for len(replies) < len(want) {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return replies, err
		}
		for dec := json.NewDecoder(bytes.NewReader(msg)); ; {
			var rep wsReply
			if err := dec.Decode(&rep); err == io.EOF {
				break
			} else if err != nil {
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
