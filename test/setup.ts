// reflect-metadata must load before tsyringe in every entry point
import 'reflect-metadata';
