fn main() {
    println!("hotline");
}
