package escrow

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Operations, the names of Call's requests. Each maps to an interface of the
// IPS v2.0 API manual the seed cites (section in parentheses). Field names
// follow the manual without its "p" prefix; amounts are int64 fen.
const (
	OpOpenAccount       = "open_account"           // 4.2 开户, SMS-confirmed
	OpSMSConfirm        = "sms_confirm"            // the SMS code of a request waiting for it
	OpRegisterLoan      = "register_loan"          // 4.3 标的登记, SMS-confirmed by the borrower
	OpRegisterGuarantor = "register_guarantor"     // 4.5 登记担保方, with or without margin
	OpBid               = "bid"                    // 4.4 登记债权人: freeze an investor's bid
	OpRegisterDebt      = "register_debt_transfer" // 4.6 登记债权转让: freeze the buyer's price
	OpTransfer          = "transfer"               // 4.10 转账: invest, debt_transfer, compensation, compensation_repay
	OpRepay             = "repay"                  // 4.11 还款, manual or under auto_repay
	OpUnfreeze          = "unfreeze"               // 4.12 解冻保证金: borrower or guarantor margin
	OpTopUp             = "topup"                  // 4.9 充值: online_bank or withhold (user-initiated)
	OpWithholdTopUp     = "withhold_topup"         // 4.13 自动代扣充值: merchant-initiated, SMS-confirmed
	OpWithdraw          = "withdraw"               // 4.14 提现
	OpAuthorize         = "authorize"              // 4.7 自动投标签约, 4.8 自动还款签约, withholding mandate
	OpRevoke            = "revoke"                 // ends a standing authorization
	OpCancel            = "cancel"                 // returns frozen bids (a failed listing) or a frozen debt-transfer price
	OpQuery             = "query"                  // a bill's state and response (settles an unknown bank outcome)
	OpBalance           = "balance"                // a custody account's available and frozen amounts
)

// Transfer types of OpTransfer (IPS pTransferType 1 投资, 4 债权转让, 2 代偿,
// 3 代偿还款).
const (
	TransferInvest            = "invest"
	TransferDebt              = "debt_transfer"
	TransferCompensation      = "compensation"
	TransferCompensationRepay = "compensation_repay"
)

// Roles of custody accounts.
const (
	RoleInvestor  = "investor"
	RoleBorrower  = "borrower"
	RoleGuarantor = "guarantor"
	RolePlatform  = "platform"
)

// Kinds of standing authorization.
const (
	AuthAutoBid   = "auto_bid"
	AuthAutoRepay = "auto_repay"
	AuthWithhold  = "withhold"
)

// Limits on requests.
const (
	MaxRequestBytes = 64 << 10
	MaxAmount       = 1_000_000_000_000_000 // fen: ten trillion yuan
	MaxBills        = 1000                  // bids released by one invest transfer
	MaxUserBytes    = 64
	MaxAppBytes     = 48 // the app's namespace: a slug, or "sandbox:" and a slug
	MaxRaiseDays    = 365
	MaxAuthDays     = 3650
)

// OpenAccount opens the invocation user's custody account in Role.
type OpenAccount struct {
	MerBillNo string
	Role      string // investor, borrower, guarantor
}

// SMSConfirm completes the request MerBillNo with the code sent to its user.
type SMSConfirm struct {
	MerBillNo string
	SmsCode   string
}

// RegisterLoan registers the listing BidNo of LendAmt for Borrower; the
// borrower confirms by SMS. GuaranteesAmt is the borrower's margin, frozen
// at registration (0: none). Bids are open for RaiseDays days.
type RegisterLoan struct {
	MerBillNo     string
	BidNo         string
	Borrower      string
	LendAmt       int64
	GuaranteesAmt int64  `json:",omitempty"`
	TrdLendRate   string // annual rate in percent, "12.50"
	RaiseDays     int
}

// RegisterGuarantor makes Guarantor (the invocation's user) guarantee BidNo,
// freezing MarginAmt of its custody account (0: without margin).
type RegisterGuarantor struct {
	MerBillNo string
	BidNo     string
	Guarantor string
	MarginAmt int64 `json:",omitempty"`
}

// Bid freezes TrdAmt of Investor's custody account for BidNo.
type Bid struct {
	MerBillNo string
	BidNo     string
	Investor  string
	TrdAmt    int64
}

// RegisterDebtTransfer freezes Buyer's Price for Principal of Seller's claim
// on BidNo.
type RegisterDebtTransfer struct {
	MerBillNo string
	BidNo     string
	Seller    string
	Buyer     string
	Principal int64
	Price     int64
}

// Transfer moves committed money of BidNo, by TransferType:
//   - invest: posts frozen bids to the borrower (Bills: the bids' MerBillNo;
//     none: every frozen bid, the one-time release); Fee, if any, goes from
//     the borrower to the platform.
//   - debt_transfer: posts the buyer's frozen price (Bills: the one
//     register_debt_transfer MerBillNo) and moves the claim.
//   - compensation: Amount from the guarantor to the holders pro rata
//     (Payees: only these holders).
//   - compensation_repay: Amount from the borrower to the guarantor, at most
//     what it compensated and was not repaid.
type Transfer struct {
	MerBillNo    string
	TransferType string
	BidNo        string
	Bills        []string `json:",omitempty"`
	Payees       []string `json:",omitempty"`
	Amount       int64    `json:",omitempty"`
	Fee          int64    `json:",omitempty"`
}

// Cancel returns frozen money of BidNo to its owners, by CancelType: bid
// voids the frozen bids Bills (none: every frozen bid, the failed listing,
// 流标) and gives their capacity back; debt_transfer voids the buyer's
// frozen price of the one registration in Bills and frees the reserved
// claim. Holds the expiry sweep already returned are only marked.
type Cancel struct {
	MerBillNo  string
	CancelType string
	BidNo      string
	Bills      []string `json:",omitempty"`
}

// Repay pays Amount from BidNo's borrower to the claim holders pro rata.
type Repay struct {
	MerBillNo string
	BidNo     string
	Amount    int64
}

// Unfreeze returns Amount of BidNo's margin (UnfreezeType borrower or
// guarantor) to its owner's custody account; repeat until zero.
type Unfreeze struct {
	MerBillNo    string
	BidNo        string
	UnfreezeType string
	Amount       int64
}

// TopUp credits Amount to User's custody account in Role from the user's
// bank card; Channel online_bank or withhold (needs a withhold mandate).
type TopUp struct {
	MerBillNo string
	User      string
	Role      string
	Amount    int64
	Channel   string
}

// WithholdTopUp is a merchant-initiated withholding top-up: it needs the
// user's withhold mandate and an SMS confirmation.
type WithholdTopUp struct {
	MerBillNo string
	User      string
	Role      string
	Amount    int64
}

// Withdraw pays Amount of User's custody account in Role to the user's card.
type Withdraw struct {
	MerBillNo string
	User      string
	Role      string
	Amount    int64
}

// Authorize records the invocation user's standing authorization of Kind:
// each use at most MaxAmount; auto_bid in total at most TotalLimit (0:
// unlimited) and only on listings of at least MinRate percent; auto_repay
// only for BidNo when given; valid for ValidDays days.
type Authorize struct {
	MerBillNo  string
	Kind       string
	MaxAmount  int64
	TotalLimit int64  `json:",omitempty"`
	MinRate    string `json:",omitempty"`
	BidNo      string `json:",omitempty"`
	ValidDays  int
}

// Revoke ends the invocation user's standing authorization of Kind.
type Revoke struct {
	MerBillNo string
	Kind      string
}

// Query asks for the state and response of the request MerBillNo.
type Query struct {
	MerBillNo string
}

// Balance asks for User's custody account in Role.
type Balance struct {
	User string
	Role string
}

// Line is one payee's share of a repayment or compensation.
type Line struct {
	User   string
	Amount int64
}

// Response is every operation's answer. ErrCode is "ok" or a Reason;
// State is done, failed, awaiting_sms or bank_pending.
type Response struct {
	ErrCode   string
	ErrMsg    string `json:",omitempty"`
	MerBillNo string `json:",omitempty"`
	Op        string `json:",omitempty"`
	State     string `json:",omitempty"`
	AccountID int64  `json:",omitempty"`
	Amount    int64  `json:",omitempty"`
	Released  int64  `json:",omitempty"` // invest: the loan's released total
	Remaining int64  `json:",omitempty"` // unfreeze: margin left; bid: listing capacity left
	Available int64  `json:",omitempty"` // balance
	Frozen    int64  `json:",omitempty"` // balance: pending debits (bids, transfers, withdrawals)
	Lines     []Line `json:",omitempty"`
	Replayed  bool   `json:",omitempty"`
}

// Request states.
const (
	StateDone        = "done"
	StateFailed      = "failed"
	StateAwaitingSMS = "awaiting_sms"
	StateBankPending = "bank_pending"
)

// request is what every decoded request offers.
type request interface{ validate() error }

// Decode parses the JSON body of operation op strictly (unknown fields,
// trailing data and oversize bodies refused) and validates it. Errors are
// ErrInvalid.
func Decode(op string, body []byte) (any, error) {
	var r request
	switch op {
	case OpOpenAccount:
		r = &OpenAccount{}
	case OpSMSConfirm:
		r = &SMSConfirm{}
	case OpRegisterLoan:
		r = &RegisterLoan{}
	case OpRegisterGuarantor:
		r = &RegisterGuarantor{}
	case OpBid:
		r = &Bid{}
	case OpRegisterDebt:
		r = &RegisterDebtTransfer{}
	case OpTransfer:
		r = &Transfer{}
	case OpRepay:
		r = &Repay{}
	case OpUnfreeze:
		r = &Unfreeze{}
	case OpTopUp:
		r = &TopUp{}
	case OpWithholdTopUp:
		r = &WithholdTopUp{}
	case OpWithdraw:
		r = &Withdraw{}
	case OpAuthorize:
		r = &Authorize{}
	case OpRevoke:
		r = &Revoke{}
	case OpCancel:
		r = &Cancel{}
	case OpQuery:
		r = &Query{}
	case OpBalance:
		r = &Balance{}
	default:
		return nil, fail(ErrInvalid, "unknown operation %q", op)
	}
	if len(body) > MaxRequestBytes {
		return nil, fail(ErrInvalid, "%s: request of %d bytes, over %d", op, len(body), MaxRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return nil, fail(ErrInvalid, "%s: %v", op, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fail(ErrInvalid, "%s: trailing data after the request", op)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

func checkBill(field, v string) error {
	if !validBill(v) {
		return fail(ErrInvalid, "%s must be 1..32 characters of A-Z, a-z, 0-9, _ and -", field)
	}
	return nil
}

// validBill reports 1..32 characters of A-Z, a-z, 0-9, _ and -.
func validBill(v string) bool {
	if v == "" || len(v) > 32 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func checkUser(field, v string) error {
	if v == "" || len(v) > MaxUserBytes || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool {
		return unicode.IsControl(r) || r == '/'
	}) {
		return fail(ErrInvalid, "%s must be 1..%d bytes of UTF-8 without control characters or /", field, MaxUserBytes)
	}
	return nil
}

func checkAmount(field string, v int64, zeroOK bool) error {
	if (v == 0 && zeroOK) || (v > 0 && v <= MaxAmount) {
		return nil
	}
	return fail(ErrInvalid, "%s must be 1..%d fen, not %d", field, MaxAmount, v)
}

func checkRole(v string) error {
	switch v {
	case RoleInvestor, RoleBorrower, RoleGuarantor:
		return nil
	}
	return fail(ErrInvalid, "Role must be investor, borrower or guarantor, not %q", v)
}

// parseRate parses an annual rate in percent: 0 <= rate <= 100, at most 4
// decimals.
func parseRate(field, v string) (decimal.Decimal, error) {
	d, err := decimal.NewFromString(v)
	if err != nil || len(v) > 12 || d.IsNegative() || d.GreaterThan(decimal.NewFromInt(100)) || d.Exponent() < -4 {
		return decimal.Decimal{}, fail(ErrInvalid, "%s must be a percentage 0..100 with at most 4 decimals, not %q", field, v)
	}
	return d, nil
}

func (r *OpenAccount) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	return checkRole(r.Role)
}

func (r *SMSConfirm) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	if len(r.SmsCode) != 6 || strings.Trim(r.SmsCode, "0123456789") != "" {
		return fail(ErrInvalid, "SmsCode must be 6 digits")
	}
	return nil
}

func (r *RegisterLoan) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	if err := checkBill("BidNo", r.BidNo); err != nil {
		return err
	}
	if err := checkUser("Borrower", r.Borrower); err != nil {
		return err
	}
	if err := checkAmount("LendAmt", r.LendAmt, false); err != nil {
		return err
	}
	if err := checkAmount("GuaranteesAmt", r.GuaranteesAmt, true); err != nil {
		return err
	}
	if _, err := parseRate("TrdLendRate", r.TrdLendRate); err != nil {
		return err
	}
	if r.RaiseDays < 1 || r.RaiseDays > MaxRaiseDays {
		return fail(ErrInvalid, "RaiseDays must be 1..%d", MaxRaiseDays)
	}
	return nil
}

func (r *RegisterGuarantor) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	if err := checkBill("BidNo", r.BidNo); err != nil {
		return err
	}
	if err := checkUser("Guarantor", r.Guarantor); err != nil {
		return err
	}
	return checkAmount("MarginAmt", r.MarginAmt, true)
}

func (r *Bid) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	if err := checkBill("BidNo", r.BidNo); err != nil {
		return err
	}
	if err := checkUser("Investor", r.Investor); err != nil {
		return err
	}
	return checkAmount("TrdAmt", r.TrdAmt, false)
}

func (r *RegisterDebtTransfer) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	if err := checkBill("BidNo", r.BidNo); err != nil {
		return err
	}
	if err := checkUser("Seller", r.Seller); err != nil {
		return err
	}
	if err := checkUser("Buyer", r.Buyer); err != nil {
		return err
	}
	if r.Seller == r.Buyer {
		return fail(ErrInvalid, "Seller and Buyer are the same user")
	}
	if err := checkAmount("Principal", r.Principal, false); err != nil {
		return err
	}
	return checkAmount("Price", r.Price, false)
}

func (r *Transfer) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	if err := checkBill("BidNo", r.BidNo); err != nil {
		return err
	}
	if len(r.Bills) > MaxBills || len(r.Payees) > MaxBills {
		return fail(ErrInvalid, "at most %d Bills and Payees", MaxBills)
	}
	for _, b := range r.Bills {
		if err := checkBill("Bills[]", b); err != nil {
			return err
		}
	}
	for _, p := range r.Payees {
		if err := checkUser("Payees[]", p); err != nil {
			return err
		}
	}
	switch r.TransferType {
	case TransferInvest:
		if r.Amount != 0 || len(r.Payees) > 0 {
			return fail(ErrInvalid, "invest takes Bills and Fee, not Amount or Payees")
		}
		return checkAmount("Fee", r.Fee, true)
	case TransferDebt:
		if len(r.Bills) != 1 || r.Amount != 0 || r.Fee != 0 || len(r.Payees) > 0 {
			return fail(ErrInvalid, "debt_transfer takes exactly one of Bills (the register_debt_transfer MerBillNo)")
		}
	case TransferCompensation, TransferCompensationRepay:
		if len(r.Bills) > 0 || r.Fee != 0 || (r.TransferType == TransferCompensationRepay && len(r.Payees) > 0) {
			return fail(ErrInvalid, "%s takes Amount (and Payees for compensation)", r.TransferType)
		}
		return checkAmount("Amount", r.Amount, false)
	default:
		return fail(ErrInvalid, "TransferType must be invest, debt_transfer, compensation or compensation_repay, not %q", r.TransferType)
	}
	return nil
}

func (r *Cancel) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	if err := checkBill("BidNo", r.BidNo); err != nil {
		return err
	}
	if len(r.Bills) > MaxBills {
		return fail(ErrInvalid, "at most %d Bills", MaxBills)
	}
	for _, b := range r.Bills {
		if err := checkBill("Bills[]", b); err != nil {
			return err
		}
	}
	switch r.CancelType {
	case "bid":
	case TransferDebt:
		if len(r.Bills) != 1 {
			return fail(ErrInvalid, "cancelling a debt_transfer takes exactly one of Bills")
		}
	default:
		return fail(ErrInvalid, "CancelType must be bid or debt_transfer, not %q", r.CancelType)
	}
	return nil
}

func (r *Repay) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	if err := checkBill("BidNo", r.BidNo); err != nil {
		return err
	}
	return checkAmount("Amount", r.Amount, false)
}

func (r *Unfreeze) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	if err := checkBill("BidNo", r.BidNo); err != nil {
		return err
	}
	if r.UnfreezeType != RoleBorrower && r.UnfreezeType != RoleGuarantor {
		return fail(ErrInvalid, "UnfreezeType must be borrower or guarantor, not %q", r.UnfreezeType)
	}
	return checkAmount("Amount", r.Amount, false)
}

func (r *TopUp) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	if err := checkUser("User", r.User); err != nil {
		return err
	}
	if err := checkRole(r.Role); err != nil {
		return err
	}
	if r.Channel != "online_bank" && r.Channel != "withhold" {
		return fail(ErrInvalid, "Channel must be online_bank or withhold, not %q", r.Channel)
	}
	return checkAmount("Amount", r.Amount, false)
}

func (r *WithholdTopUp) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	if err := checkUser("User", r.User); err != nil {
		return err
	}
	if err := checkRole(r.Role); err != nil {
		return err
	}
	return checkAmount("Amount", r.Amount, false)
}

func (r *Withdraw) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	if err := checkUser("User", r.User); err != nil {
		return err
	}
	if err := checkRole(r.Role); err != nil {
		return err
	}
	return checkAmount("Amount", r.Amount, false)
}

func checkKind(v string) error {
	switch v {
	case AuthAutoBid, AuthAutoRepay, AuthWithhold:
		return nil
	}
	return fail(ErrInvalid, "Kind must be auto_bid, auto_repay or withhold, not %q", v)
}

func (r *Authorize) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	if err := checkKind(r.Kind); err != nil {
		return err
	}
	if err := checkAmount("MaxAmount", r.MaxAmount, false); err != nil {
		return err
	}
	if err := checkAmount("TotalLimit", r.TotalLimit, true); err != nil {
		return err
	}
	if r.TotalLimit != 0 && r.TotalLimit < r.MaxAmount {
		return fail(ErrInvalid, "TotalLimit is below MaxAmount")
	}
	if r.MinRate != "" {
		if r.Kind != AuthAutoBid {
			return fail(ErrInvalid, "MinRate is for auto_bid only")
		}
		if _, err := parseRate("MinRate", r.MinRate); err != nil {
			return err
		}
	}
	if r.TotalLimit != 0 && r.Kind != AuthAutoBid {
		return fail(ErrInvalid, "TotalLimit is for auto_bid only")
	}
	if r.BidNo != "" {
		if r.Kind != AuthAutoRepay {
			return fail(ErrInvalid, "BidNo is for auto_repay only")
		}
		if err := checkBill("BidNo", r.BidNo); err != nil {
			return err
		}
	}
	if r.ValidDays < 1 || r.ValidDays > MaxAuthDays {
		return fail(ErrInvalid, "ValidDays must be 1..%d", MaxAuthDays)
	}
	return nil
}

func (r *Revoke) validate() error {
	if err := checkBill("MerBillNo", r.MerBillNo); err != nil {
		return err
	}
	return checkKind(r.Kind)
}

func (r *Query) validate() error { return checkBill("MerBillNo", r.MerBillNo) }

func (r *Balance) validate() error {
	if err := checkUser("User", r.User); err != nil {
		return err
	}
	return checkRole(r.Role)
}
