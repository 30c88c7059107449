//! The core User schema (RFC 7643 §4.1, §8.7.1) and the Enterprise User extension (§4.3).
//!
//! Ids that point at other resources (`groups.value`, `manager.value`) and URIs (`$ref`) are
//! caseExact: they are opaque identifiers, and comparing them case-insensitively could make a
//! filter select the wrong resource.

use super::AttrType::{Binary, Boolean, Complex, Reference, String};
use super::{AttributeDef as A, Mutability, Returned, SchemaDef, Uniqueness};

pub static USER: SchemaDef = SchemaDef {
    id: "urn:ietf:params:scim:schemas:core:2.0:User",
    name: "User",
    description: "User Account",
    attributes: USER_ATTRS,
};

/// The enterprise extension's schema URN (RFC 7643 §4.3).
pub const ENTERPRISE_USER_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

pub static ENTERPRISE_USER: SchemaDef = SchemaDef {
    id: ENTERPRISE_USER_URN,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: ENTERPRISE_ATTRS,
};

const USER_ATTRS: &[A] = &[
    A::new(
        "userName",
        String,
        "Unique identifier for the User, used to authenticate.",
    )
    .required()
    .unique(Uniqueness::Server),
    A::new("name", Complex, "The components of the user's real name.").subs(NAME_SUBS),
    A::new(
        "displayName",
        String,
        "The name of the User, suitable for display to end-users.",
    ),
    A::new(
        "nickName",
        String,
        "The casual way to address the user in real life.",
    ),
    A::new(
        "profileUrl",
        Reference,
        "A fully qualified URL pointing to the User's online profile.",
    )
    .refs(&["external"]),
    A::new(
        "title",
        String,
        "The user's title, such as \"Vice President\".",
    ),
    A::new(
        "userType",
        String,
        "The relationship between the organization and the user.",
    ),
    A::new(
        "preferredLanguage",
        String,
        "The User's preferred written or spoken language.",
    ),
    A::new(
        "locale",
        String,
        "The User's default location for localization.",
    ),
    A::new(
        "timezone",
        String,
        "The User's time zone in the Olson time zone database format.",
    ),
    A::new("active", Boolean, "The User's administrative status."),
    A::new("password", String, "The User's cleartext password.")
        .mutability(Mutability::WriteOnly)
        .returned(Returned::Never),
    A::new("emails", Complex, "Email addresses for the user.")
        .multi()
        .subs(EMAIL_SUBS),
    A::new("phoneNumbers", Complex, "Phone numbers for the User.")
        .multi()
        .subs(PHONE_SUBS),
    A::new("ims", Complex, "Instant messaging addresses for the User.")
        .multi()
        .subs(IM_SUBS),
    A::new("photos", Complex, "URLs of photos of the User.")
        .multi()
        .subs(PHOTO_SUBS),
    A::new(
        "addresses",
        Complex,
        "A physical mailing address for this User.",
    )
    .multi()
    .subs(ADDRESS_SUBS),
    A::new(
        "groups",
        Complex,
        "Groups to which the user belongs, direct or indirect.",
    )
    .multi()
    .read_only()
    .subs(GROUP_REF_SUBS),
    A::new("entitlements", Complex, "Entitlements the User has.")
        .multi()
        .subs(PLAIN_SUBS),
    A::new("roles", Complex, "Roles for the User.")
        .multi()
        .subs(PLAIN_SUBS),
    A::new(
        "x509Certificates",
        Complex,
        "X.509 certificates issued to the User.",
    )
    .multi()
    .subs(CERT_SUBS),
];

const NAME_SUBS: &[A] = &[
    A::new("formatted", String, "The full name, formatted for display."),
    A::new("familyName", String, "The family name of the User."),
    A::new("givenName", String, "The given name of the User."),
    A::new("middleName", String, "The middle name(s) of the User."),
    A::new(
        "honorificPrefix",
        String,
        "The honorific prefix(es) of the User.",
    ),
    A::new(
        "honorificSuffix",
        String,
        "The honorific suffix(es) of the User.",
    ),
];

const DISPLAY: A = A::new(
    "display",
    String,
    "A human-readable name, primarily used for display.",
);
const PRIMARY: A = A::new("primary", Boolean, "Whether this is the primary value.");

const EMAIL_SUBS: &[A] = &[
    A::new("value", String, "Email address for the user."),
    DISPLAY,
    A::new("type", String, "A label indicating the email's function.")
        .canonical(&["work", "home", "other"]),
    PRIMARY,
];

const PHONE_SUBS: &[A] = &[
    A::new("value", String, "Phone number of the User."),
    DISPLAY,
    A::new(
        "type",
        String,
        "A label indicating the phone number's function.",
    )
    .canonical(&["work", "home", "mobile", "fax", "pager", "other"]),
    PRIMARY,
];

const IM_SUBS: &[A] = &[
    A::new("value", String, "Instant messaging address for the User."),
    DISPLAY,
    A::new("type", String, "A label indicating the IM's function.")
        .canonical(&["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
    PRIMARY,
];

const PHOTO_SUBS: &[A] = &[
    A::new("value", Reference, "URL of a photo of the User.")
        .case_exact()
        .refs(&["external"]),
    DISPLAY,
    A::new("type", String, "A label indicating the photo's function.")
        .canonical(&["photo", "thumbnail"]),
    PRIMARY,
];

const ADDRESS_SUBS: &[A] = &[
    A::new(
        "formatted",
        String,
        "The full mailing address, formatted for display.",
    ),
    A::new(
        "streetAddress",
        String,
        "The full street address component.",
    ),
    A::new("locality", String, "The city or locality component."),
    A::new("region", String, "The state or region component."),
    A::new(
        "postalCode",
        String,
        "The zip code or postal code component.",
    ),
    A::new("country", String, "The country name component."),
    A::new("type", String, "A label indicating the address's function.")
        .canonical(&["work", "home", "other"]),
    PRIMARY,
];

const GROUP_REF_SUBS: &[A] = &[
    A::new("value", String, "The identifier of the User's group.")
        .case_exact()
        .read_only(),
    A::new(
        "$ref",
        Reference,
        "The URI of the corresponding Group resource.",
    )
    .case_exact()
    .read_only()
    .refs(&["User", "Group"]),
    A::new("display", String, "A human-readable name for the group.").read_only(),
    A::new("type", String, "How the membership was derived.")
        .read_only()
        .canonical(&["direct", "indirect"]),
];

const PLAIN_SUBS: &[A] = &[
    A::new("value", String, "The value of the item."),
    DISPLAY,
    A::new("type", String, "A label indicating the item's function."),
    PRIMARY,
];

const CERT_SUBS: &[A] = &[
    A::new("value", Binary, "The value of an X.509 certificate.").case_exact(),
    DISPLAY,
    A::new(
        "type",
        String,
        "A label indicating the certificate's function.",
    ),
    PRIMARY,
];

const ENTERPRISE_ATTRS: &[A] = &[
    A::new(
        "employeeNumber",
        String,
        "Numeric or alphanumeric identifier assigned to a person.",
    ),
    A::new(
        "costCenter",
        String,
        "Identifies the name of a cost center.",
    ),
    A::new(
        "organization",
        String,
        "Identifies the name of an organization.",
    ),
    A::new("division", String, "Identifies the name of a division."),
    A::new("department", String, "Identifies the name of a department."),
    A::new("manager", Complex, "The User's manager.").subs(MANAGER_SUBS),
];

const MANAGER_SUBS: &[A] = &[
    A::new(
        "value",
        String,
        "The id of the SCIM resource representing the User's manager.",
    )
    .case_exact(),
    A::new(
        "$ref",
        Reference,
        "The URI of the SCIM resource representing the User's manager.",
    )
    .case_exact()
    .refs(&["User"]),
    A::new(
        "displayName",
        String,
        "The displayName of the User's manager.",
    )
    .read_only(),
];
