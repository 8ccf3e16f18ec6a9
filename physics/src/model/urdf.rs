//! The subset of URDF that the DeepMimic humanoid uses, with pybullet's extensions (`spherical`
//! joints, `capsule` shapes): links with one inertial and one collision element, and joints of
//! type `spherical`, `revolute` or `fixed`. Anything else is an error naming the element, not a
//! silent approximation.

use glam::DVec3;
use roxmltree::Node;

/// A collision shape as the file gives it, before scaling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Geometry {
    Sphere {
        radius: f64,
    },
    /// pybullet's capsule: a segment of `length` along the shape's z axis, swept by `radius`.
    Capsule {
        radius: f64,
        length: f64,
    },
    Box {
        size: DVec3,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Link {
    pub name: String,
    pub mass: f64,
    /// Centre of mass in the link frame.
    pub com: DVec3,
    /// Shape, its origin and its roll-pitch-yaw in the link frame.
    pub collision: Option<(Geometry, DVec3, DVec3)>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Joint {
    pub name: String,
    pub kind: String,
    pub parent: String,
    pub child: String,
    pub origin: DVec3,
    pub rpy: DVec3,
    pub axis: DVec3,
    pub limit: Option<[f64; 2]>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Urdf {
    pub links: Vec<Link>,
    pub joints: Vec<Joint>,
}

/// Parses the file's text; the error names the element at fault.
pub(crate) fn parse(text: &str) -> Result<Urdf, String> {
    // pybullet's humanoid.urdf ends with a NUL byte.
    let text = text.trim_end_matches(|c: char| c == '\0' || c.is_whitespace());
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("not XML: {e}"))?;
    let robot = doc.root_element();
    if !robot.has_tag_name("robot") {
        return Err(format!("root element is <{}>, not <robot>", robot.tag_name().name()));
    }
    let mut urdf = Urdf { links: Vec::new(), joints: Vec::new() };
    for node in robot.children().filter(Node::is_element) {
        match node.tag_name().name() {
            "link" => urdf.links.push(link(node)?),
            "joint" => urdf.joints.push(joint(node)?),
            _ => {}
        }
    }
    Ok(urdf)
}

fn link(node: Node) -> Result<Link, String> {
    let name = attribute(node, "name")?.to_owned();
    let at = |why: String| format!("link `{name}`: {why}");
    let inertial = child(node, "inertial").ok_or_else(|| at("no <inertial>".into()))?;
    let mass = number(attribute(child(inertial, "mass").ok_or_else(|| at("no <mass>".into()))?, "value").map_err(at)?)
        .map_err(at)?;
    if !(mass > 0.0 && mass.is_finite()) {
        return Err(at(format!("mass {mass} is not positive")));
    }
    let (com, _) = origin(child(inertial, "origin")).map_err(at)?;
    let collision = match child(node, "collision") {
        None => None,
        Some(collision) => {
            let (xyz, rpy) = origin(child(collision, "origin")).map_err(at)?;
            let geometry = child(collision, "geometry").ok_or_else(|| at("<collision> without <geometry>".into()))?;
            Some((shape(geometry).map_err(at)?, xyz, rpy))
        }
    };
    Ok(Link { name, mass, com, collision })
}

fn shape(geometry: Node) -> Result<Geometry, String> {
    let shape = geometry.children().find(Node::is_element).ok_or("empty <geometry>")?;
    let positive = |name: &str| -> Result<f64, String> {
        let value = number(attribute(shape, name)?)?;
        if value > 0.0 && value.is_finite() { Ok(value) } else { Err(format!("{name} {value} is not positive")) }
    };
    match shape.tag_name().name() {
        "sphere" => Ok(Geometry::Sphere { radius: positive("radius")? }),
        "capsule" => Ok(Geometry::Capsule { radius: positive("radius")?, length: positive("length")? }),
        "box" => {
            let size = vector(attribute(shape, "size")?)?;
            if size.min_element() > 0.0 {
                Ok(Geometry::Box { size })
            } else {
                Err(format!("box size {size} is not positive"))
            }
        }
        other => Err(format!("unsupported shape <{other}>")),
    }
}

fn joint(node: Node) -> Result<Joint, String> {
    let name = attribute(node, "name")?.to_owned();
    let at = |why: String| format!("joint `{name}`: {why}");
    let kind = attribute(node, "type").map_err(at)?.to_owned();
    let end = |tag: &str| -> Result<String, String> {
        let element = child(node, tag).ok_or_else(|| at(format!("no <{tag}>")))?;
        Ok(attribute(element, "link").map_err(at)?.to_owned())
    };
    let (parent, child_link) = (end("parent")?, end("child")?);
    let (origin, rpy) = origin(child(node, "origin")).map_err(at)?;
    let axis = match child(node, "axis") {
        Some(axis) => vector(attribute(axis, "xyz").map_err(at)?).map_err(at)?,
        None => DVec3::X,
    };
    let limit = match child(node, "limit") {
        Some(limit) => {
            let bound = |name: &str| number(attribute(limit, name)?);
            Some([bound("lower").map_err(at)?, bound("upper").map_err(at)?])
        }
        None => None,
    };
    Ok(Joint { name, kind, parent, child: child_link, origin, rpy, axis, limit })
}

fn child<'a, 'input>(node: Node<'a, 'input>, tag: &str) -> Option<Node<'a, 'input>> {
    node.children().find(|n| n.has_tag_name(tag))
}

fn attribute<'a>(node: Node<'a, '_>, name: &str) -> Result<&'a str, String> {
    node.attribute(name).ok_or_else(|| format!("<{}> without `{name}`", node.tag_name().name()))
}

/// `xyz` and `rpy` of an optional `<origin>` (zero when absent).
fn origin(node: Option<Node>) -> Result<(DVec3, DVec3), String> {
    let Some(node) = node else { return Ok((DVec3::ZERO, DVec3::ZERO)) };
    let read = |name: &str| node.attribute(name).map_or(Ok(DVec3::ZERO), vector);
    Ok((read("xyz")?, read("rpy")?))
}

fn number(text: &str) -> Result<f64, String> {
    let value: f64 = text.trim().parse().map_err(|_| format!("`{text}` is not a number"))?;
    if value.is_finite() { Ok(value) } else { Err(format!("`{text}` is not finite")) }
}

fn vector(text: &str) -> Result<DVec3, String> {
    let values = text.split_whitespace().map(number).collect::<Result<Vec<_>, _>>()?;
    match values[..] {
        [x, y, z] => Ok(DVec3::new(x, y, z)),
        _ => Err(format!("`{text}` is not three numbers")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TWO_LINKS: &str = r#"<robot name="r">
        <link name="a"><inertial><origin xyz="0 0.5 0"/><mass value="2"/></inertial>
          <collision><origin rpy="-1.5 0 0" xyz="0 0.5 0"/><geometry><capsule length="1" radius="0.2"/></geometry></collision></link>
        <link name="b"><inertial><mass value="1"/></inertial></link>
        <joint name="b" type="revolute"><parent link="a"/><child link="b"/>
          <limit lower="-2.5" upper="0."/><origin xyz="0 1 0"/><axis xyz="0 0 1"/></joint>
    </robot>"#;

    #[test]
    fn reads_links_shapes_and_joints() {
        let urdf = parse(TWO_LINKS).unwrap();
        assert_eq!(urdf.links.len(), 2);
        assert_eq!(urdf.links[0].com, DVec3::new(0.0, 0.5, 0.0));
        let (shape, xyz, rpy) = urdf.links[0].collision.unwrap();
        assert_eq!(shape, Geometry::Capsule { radius: 0.2, length: 1.0 });
        assert_eq!((xyz.y, rpy.x), (0.5, -1.5));
        assert_eq!(urdf.links[1].collision, None);
        let joint = &urdf.joints[0];
        assert_eq!((joint.kind.as_str(), joint.parent.as_str(), joint.child.as_str()), ("revolute", "a", "b"));
        assert_eq!((joint.axis, joint.limit), (DVec3::Z, Some([-2.5, 0.0])));
    }

    #[test]
    fn names_the_element_at_fault() {
        let no_mass = TWO_LINKS.replace(r#"<mass value="1"/>"#, "");
        assert_eq!(parse(&no_mass).unwrap_err(), "link `b`: no <mass>");
        let bad_axis = TWO_LINKS.replace(r#"xyz="0 0 1""#, r#"xyz="0 z 1""#);
        assert_eq!(parse(&bad_axis).unwrap_err(), "joint `b`: `z` is not a number");
        let cone = TWO_LINKS.replace("<capsule", "<cone").replace("</capsule", "</cone");
        assert_eq!(parse(&cone).unwrap_err(), "link `a`: unsupported shape <cone>");
        assert!(parse("<robot>").unwrap_err().starts_with("not XML"));
    }
}
