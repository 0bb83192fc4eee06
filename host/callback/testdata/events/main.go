// Command events is a test guest for host/callback: its on_event counts each
// event id in the app's store (kv "seen/<id>") and asks for redelivery of
// events of type "order.refused".
package main

import (
	"errors"

	"github.com/jifu-open/jifu/sdk"
)

func init() {
	sdk.OnEvent(func(ev *sdk.Event) error {
		if ev.Type == "order.refused" {
			return errors.New("not now")
		}
		_, err := sdk.KV.Incr("seen/" + ev.ID)
		return err
	})
}

func main() {}
