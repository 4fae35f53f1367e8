module lilt.test/goclient

go 1.26.0

require github.com/xmppo/go-xmpp v0.4.1

require (
	github.com/google/uuid v1.6.0 // indirect
	golang.org/x/net v0.61.0 // indirect
)
