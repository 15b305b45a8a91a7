package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Fixtures is the reference data file of the contract (section 4):
// companies, users, grants, devices and MNO integrations, owned by other
// platform services; repo.LoadFixtures stores them. Besides decoding a file
// (ParseFixtures), the builder methods make one in code: generated
// benchmark data and test worlds.
type Fixtures struct {
	Companies       []Company        `json:"companies"`
	Users           []User           `json:"users"`
	Grants          []Grant          `json:"grants"`
	Devices         []Device         `json:"devices"`
	MNOIntegrations []MNOIntegration `json:"mno_integrations"`
}

// Company is a node of the company tree; ParentID nil for a root.
type Company struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	ParentID *string `json:"parent_id"`
}

// User is a platform user.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Grant gives a user a permission on a company and its descendants.
type Grant struct {
	UserID     string `json:"user_id"`
	CompanyID  string `json:"company_id"`
	Permission string `json:"permission"`
}

// Device belongs to a company; a SIM inherits it.
type Device struct {
	ID        string `json:"id"`
	CompanyID string `json:"company_id"`
	Name      string `json:"name"`
}

// MNOIntegration is a carrier CMP integration owned by a company.
type MNOIntegration struct {
	ID        string `json:"id"`
	CompanyID string `json:"company_id"`
	Name      string `json:"name"`
}

// Company adds a company named after its id; parent "" makes it a root.
func (f *Fixtures) Company(id, parent string) *Fixtures {
	c := Company{ID: id, Name: id}
	if parent != "" {
		c.ParentID = &parent
	}
	f.Companies = append(f.Companies, c)
	return f
}

// User adds a user named after its id.
func (f *Fixtures) User(id string) *Fixtures {
	f.Users = append(f.Users, User{ID: id, Name: id})
	return f
}

// Grant adds a grant of permission on company to user.
func (f *Fixtures) Grant(user, company, permission string) *Fixtures {
	f.Grants = append(f.Grants, Grant{UserID: user, CompanyID: company, Permission: permission})
	return f
}

// Device adds a device of company, named after its id.
func (f *Fixtures) Device(id, company string) *Fixtures {
	f.Devices = append(f.Devices, Device{ID: id, CompanyID: company, Name: id})
	return f
}

// MNOIntegration adds an MNO integration of company, named after its id.
func (f *Fixtures) MNOIntegration(id, company string) *Fixtures {
	f.MNOIntegrations = append(f.MNOIntegrations, MNOIntegration{ID: id, CompanyID: company, Name: id})
	return f
}

// ParseFixtures decodes a fixtures file strictly: an unknown key or a wrong
// type is an error naming it, and every id and reference must be non-empty.
func ParseFixtures(data []byte) (*Fixtures, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f Fixtures
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("fixtures: %w", err)
	}
	if dec.More() {
		return nil, errors.New("fixtures: unexpected data after the JSON object")
	}
	var problems []string
	need := func(kind string, i int, field, v string) {
		if strings.TrimSpace(v) == "" {
			problems = append(problems, fmt.Sprintf("%s[%d].%s is required", kind, i, field))
		}
	}
	for i, c := range f.Companies {
		need("companies", i, "id", c.ID)
		if c.ParentID != nil && *c.ParentID == c.ID {
			problems = append(problems, fmt.Sprintf("companies[%d]: %q is its own parent", i, c.ID))
		}
	}
	for i, u := range f.Users {
		need("users", i, "id", u.ID)
	}
	for i, g := range f.Grants {
		need("grants", i, "user_id", g.UserID)
		need("grants", i, "company_id", g.CompanyID)
		need("grants", i, "permission", g.Permission)
	}
	for i, d := range f.Devices {
		need("devices", i, "id", d.ID)
		need("devices", i, "company_id", d.CompanyID)
	}
	for i, m := range f.MNOIntegrations {
		need("mno_integrations", i, "id", m.ID)
		need("mno_integrations", i, "company_id", m.CompanyID)
	}
	if len(problems) > 0 {
		return nil, errors.New("fixtures: " + strings.Join(problems, "; "))
	}
	return &f, nil
}
