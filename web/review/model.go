package review

import (
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web/layout"
)

// QueueView is the reviewers' queue.
type QueueView struct {
	Page     layout.Page
	Versions []*marketplace.Version
}
