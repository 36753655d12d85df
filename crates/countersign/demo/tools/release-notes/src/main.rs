//! Builds release notes from merged pull request titles.

mod changelog;

fn main() {
    let titles: Vec<String> = std::io::stdin().lines().map_while(Result::ok).collect();
    print!("{}", changelog::render(&titles));
}
