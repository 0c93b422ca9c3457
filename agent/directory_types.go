package agent

// PauseType classifies a pause for reports, as OMniLeads does.
type PauseType string

// Pause types.
const (
	PauseProductive   PauseType = "productive"
	PauseRecreational PauseType = "recreational"
)

// Built-in pause ids: after-call work and supervisor pause.
const (
	PauseAfterCall  = "0"
	PauseSupervisor = "00"
)

// Pause is one entry of the pause catalog.
type Pause struct {
	ID   string    `json:"id"`
	Name string    `json:"name"`
	Type PauseType `json:"type"`
}

// QueueRef is a queue an agent belongs to, with the member penalty.
type QueueRef struct {
	Name    string `json:"name"`
	Penalty int    `json:"penalty"`
}

// Agent is one entry of the agent directory.
type Agent struct {
	ID        string
	Name      string
	Interface string // Asterisk interface, e.g. PJSIP/1001
	// MemberName is the member name sent in QueueAdd, built from the
	// directory's member name template.
	MemberName string
	Queues     []QueueRef
	// PasswordHash is a bcrypt hash for HTTP Basic authentication; empty
	// means Basic is not allowed for this agent.
	PasswordHash string
}

// Members returns the queue memberships of the agent as sent to Asterisk.
func (a Agent) Members() []Member {
	members := make([]Member, 0, len(a.Queues))
	for _, q := range a.Queues {
		members = append(members, Member{Queue: q.Name, Interface: a.Interface, MemberName: a.MemberName, Penalty: q.Penalty})
	}
	return members
}

// DeviceName returns the ARI-controlled device that shows the agent's
// state to dialplan hints, e.g. Stasis:agent-1001.
func (a Agent) DeviceName() string {
	return "Stasis:agent-" + a.ID
}
