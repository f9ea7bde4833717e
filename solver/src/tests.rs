use super::*;

#[test]
fn dependency_names() {
    assert_eq!(dependency_name("numpy >=1.26"), "numpy");
    assert_eq!(dependency_name("python_abi 3.12.* *_cp312"), "python_abi");
    assert_eq!(dependency_name("libgcc-ng>=12"), "libgcc-ng");
    assert_eq!(dependency_name("conda-forge::xz"), "xz");
    assert_eq!(dependency_name("zlib"), "zlib");
}
