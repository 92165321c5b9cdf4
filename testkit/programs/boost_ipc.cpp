// Boost.Interprocess across processes: a named_mutex and a named_semaphore (Boost 1.74 builds
// both on sem_open where the system has POSIX named semaphores, as Linux does) and a
// managed_shared_memory segment (shm_open) holding a counter and a 4 MiB block.
//
//   boost_ipc TAG
//
// The parent creates the three objects (names from TAG), fills the block, forks 4 children
// that open every object again by name and add 1000 each to the counter under the mutex, then
// post the semaphore; the parent waits for 4 posts, checks the counter and the block, and
// removes the objects. With TMPSHM_DIR set it prints the tmpshm files it sees there once the
// objects exist ("files .SEMD... .SHMD..."). Prints "counter 4000" and "ok"; a Boost error goes to stderr as
// "boost_ipc: <what> (error <native errno>)", exit 1.
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/interprocess/sync/named_mutex.hpp>
#include <boost/interprocess/sync/named_semaphore.hpp>
#include <boost/interprocess/sync/scoped_lock.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <string>
#include <vector>
#include <sys/wait.h>
#include <unistd.h>

namespace bip = boost::interprocess;

static const int CHILDREN = 4;
static const int ROUNDS = 1000;
static const std::size_t BLOCK = 4u << 20;
static const std::size_t SEGMENT = 8u << 20;

static void remove_all(const std::string &m, const std::string &s, const std::string &g) {
    bip::named_mutex::remove(m.c_str());
    bip::named_semaphore::remove(s.c_str());
    bip::shared_memory_object::remove(g.c_str());
}

// The names of the tmpshm files (.SHM..., .SEM...) in dir, sorted.
static std::string tmpshm_files(const char *dir) {
    std::vector<std::string> names;
    if (DIR *d = opendir(dir)) {
        while (struct dirent *e = readdir(d)) {
            std::string n = e->d_name;
            if (n.rfind(".SHM", 0) == 0 || n.rfind(".SEM", 0) == 0)
                names.push_back(n);
        }
        closedir(d);
    }
    std::sort(names.begin(), names.end());
    std::string all;
    for (const std::string &n : names)
        all += " " + n;
    return all;
}

static int child(const std::string &m, const std::string &s, const std::string &g) {
    try {
        bip::named_mutex mutex(bip::open_only, m.c_str());
        bip::named_semaphore done(bip::open_only, s.c_str());
        bip::managed_shared_memory seg(bip::open_only, g.c_str());
        long *counter = seg.find<long>("counter").first;
        if (counter == nullptr)
            return 3;
        for (int i = 0; i < ROUNDS; i++) {
            bip::scoped_lock<bip::named_mutex> lock(mutex);
            long v = *counter;
            if (i % 100 == 0)
                usleep(100); // widen the window a lost update would need
            *counter = v + 1;
        }
        done.post();
        return 0;
    } catch (const bip::interprocess_exception &e) {
        std::fprintf(stderr, "boost_ipc child: %s (error %d)\n", e.what(), e.get_native_error());
        return 1;
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    if (argc != 2) {
        std::fprintf(stderr, "usage: boost_ipc TAG\n");
        return 2;
    }
    std::string tag = argv[1];
    std::string m = "tmpshm-boost-mutex-" + tag, s = "tmpshm-boost-done-" + tag,
                g = "tmpshm-boost-seg-" + tag;
    try {
        bip::named_mutex mutex(bip::create_only, m.c_str());
        bip::named_semaphore done(bip::create_only, s.c_str(), 0);
        bip::managed_shared_memory seg(bip::create_only, g.c_str(), SEGMENT);
        long *counter = seg.construct<long>("counter")(0);
        char *block = seg.construct<char>("block")[BLOCK]('b');
        std::printf("created %s %s %s\n", m.c_str(), s.c_str(), g.c_str());
        if (const char *dir = std::getenv("TMPSHM_DIR"))
            std::printf("files%s\n", tmpshm_files(dir).c_str());
        pid_t pids[CHILDREN];
        for (int i = 0; i < CHILDREN; i++) {
            pids[i] = fork();
            if (pids[i] == 0)
                _exit(child(m, s, g));
        }
        for (int i = 0; i < CHILDREN; i++)
            done.wait();
        int bad = 0;
        for (int i = 0; i < CHILDREN; i++) {
            int status;
            if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
                WEXITSTATUS(status) != 0)
                bad++;
        }
        std::printf("counter %ld\n", *counter);
        bool same = block[0] == 'b' && block[BLOCK - 1] == 'b';
        remove_all(m, s, g);
        if (bad != 0 || *counter != CHILDREN * ROUNDS || !same) {
            std::fprintf(stderr, "boost_ipc: %d children failed, counter %ld\n", bad, *counter);
            return 1;
        }
        std::printf("ok\n");
        return 0;
    } catch (const bip::interprocess_exception &e) {
        std::fprintf(stderr, "boost_ipc: %s (error %d)\n", e.what(), e.get_native_error());
        remove_all(m, s, g);
        return 1;
    }
}
