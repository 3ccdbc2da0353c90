// Types of bin/build.js (plain JavaScript: it runs before any dependency is installed).
/** Folders compiled into dist/. */
export declare const SOURCE_DIRS: string[];
/** Why dist/ does not match the sources, or undefined when fresh. */
export declare function isStale(): string | undefined;
/** Transpile every source into a fresh dist/. */
export declare function build(opts?: { types?: boolean; out?: string }): Promise<void>;
