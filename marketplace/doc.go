// Package marketplace is the lifecycle of apps on the platform: developers
// and their service levels, staff accounts and sessions, apps and their
// credentials, versions and their automated checks, review, releases (target
// segment, gray percentage, promotion, rollback, automatic rollback), the
// store's end users (SMS login, real-name verification, level, channel,
// region), installs and consents, statistics, and the audit of every staff
// action. Its state lives in PostgreSQL (migration set "marketplace").
//
// A Service is the one entry point; every method takes the acting party
// (an Actor for staff, a user id for the store) and enforces who may do what:
// a developer sees and acts on its own apps only, only reviewers and admins
// review, only admins approve developers and service levels.
//
//	svc, err := marketplace.New(marketplace.Config{Pool: pool, Host: h, MasterKey: key,
//		Artifacts: marketplace.NewFSArtifacts(".data/artifacts"), Notifier: n})
//	acct, err := svc.RegisterDeveloper(ctx, marketplace.Registration{...})
//	app, creds, err := svc.CreateApp(ctx, actor, marketplace.AppInput{Slug: "shop", Name: "Shop"})
//	v, err := svc.UploadVersion(ctx, actor, app.ID, wasm, manifestJSON)
//	err = svc.SubmitVersion(ctx, actor, v.ID)
//	err = svc.Approve(ctx, reviewer, v.ID, "looks good")
//	rel, err := svc.StartRelease(ctx, actor, v.ID, marketplace.ReleasePlan{Percent: 10})
//
// Serving (serving.go) turns releases into the host.App that serves a given
// user, from a cache refreshed on change; Consents (consent.go) is the
// host.ConsentChecker the host asks before every scoped call.
package marketplace
